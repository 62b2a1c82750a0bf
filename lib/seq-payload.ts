// The seq+time payload of every sequenced UDP datagram (the harness's stream, the engine
// guest's stream and its counters, the pcap analyzer):
//   bytes 0-7   sequence number, u64 big-endian, counted from 0
//   bytes 8-15  send time, µs since the epoch, u64 big-endian
// Both values stay below 2^53, so they are plain numbers written as two 32-bit halves: no
// BigInt on the per-datagram path.

export const SEQ_PAYLOAD_BYTES = 16;

const TWO_32 = 0x1_0000_0000;

export interface SeqPayload {
  seq: number;
  timeUs: number;
}

function writeU64(buf: Buffer, offset: number, v: number): void {
  buf.writeUInt32BE(Math.floor(v / TWO_32), offset);
  buf.writeUInt32BE(v >>> 0, offset + 4);
}

const readU64 = (buf: Buffer, offset: number): number => buf.readUInt32BE(offset) * TWO_32 + buf.readUInt32BE(offset + 4);

/** Writes the 16-byte payload at `offset`; seq and timeUs are integers from 0 to 2^53-1. */
export function writeSeqPayload(buf: Buffer, offset: number, seq: number, timeUs: number): void {
  writeU64(buf, offset, seq);
  writeU64(buf, offset + 8, timeUs);
}

/** Reads the 16-byte payload at `offset` (the caller checks the datagram is long enough). */
export function readSeqPayload(buf: Buffer, offset: number): SeqPayload {
  return { seq: readU64(buf, offset), timeUs: readU64(buf, offset + 8) };
}

/** The sequence number alone (bytes 0-7 at `offset`): no object, for per-datagram counting. */
export const readSeq = (buf: Buffer, offset: number): number => readU64(buf, offset);
