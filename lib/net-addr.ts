// MAC and IPv4 address helpers, written once for the engine, the harness and the fixtures.
//
// API
//   parseMac('52:54:00:12:34:56') -> Buffer(6)     throws on anything but six hex pairs
//   formatMac(buf, offset = 0) -> '52:54:00:12:34:56'
//   isMac(s) -> boolean
//   parseIpv4('192.168.100.2') -> Buffer(4)        throws on a malformed address
//   ipToInt(ip) -> u32, intToIp(u32) -> dotted quad
//   ETHERTYPE_IPV4, ETHERTYPE_ARP, ETHERTYPE_RARP

export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_ARP = 0x0806;
export const ETHERTYPE_RARP = 0x8035;

const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;

export function isMac(s: string): boolean {
  return MAC_RE.test(s);
}

export function parseMac(mac: string): Buffer {
  if (!isMac(mac)) throw new Error(`invalid MAC address '${mac}': expected six hex pairs like 52:54:00:12:34:56`);
  return Buffer.from(mac.split(':').map((p) => parseInt(p, 16)));
}

/** "52:54:00:12:34:56" from the 6 bytes at `offset`. */
export function formatMac(buf: Uint8Array, offset = 0): string {
  let s = '';
  for (let i = 0; i < 6; i++) {
    const v = buf[offset + i]!;
    s += (i ? ':' : '') + (v < 16 ? '0' : '') + v.toString(16);
  }
  return s;
}

export function parseIpv4(ip: string): Buffer {
  const parts = ip.split('.');
  if (parts.length !== 4 || !parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255)) {
    throw new Error(`invalid IPv4 address '${ip}'`);
  }
  return Buffer.from(parts.map(Number));
}

export function ipToInt(ip: string): number {
  const b = parseIpv4(ip);
  return ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0;
}

export function intToIp(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}
