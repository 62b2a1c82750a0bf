// MAC and IPv4 address helpers, written once for the engine, the harness and the fixtures.
//
// API
//   parseMac('52:54:00:12:34:56') -> Buffer(6)     throws on anything but six hex pairs
//   formatMac(buf, offset = 0) -> '52:54:00:12:34:56'
//   isMac(s) -> boolean
//   isIpv4(s) -> boolean                            a dotted quad, each part 0-255
//   parseIpv4('192.168.100.2') -> Buffer(4)        throws on a malformed address
//   ipToInt(ip) -> u32 (throws likewise), intToIp(u32) -> dotted quad
//   ETHERTYPE_IPV4, ETHERTYPE_ARP, ETHERTYPE_RARP

export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_ARP = 0x0806;
export const ETHERTYPE_RARP = 0x8035;

const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;

export function isMac(s: unknown): s is string {
  return typeof s === 'string' && MAC_RE.test(s);
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

const IPV4_RE = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/** The four parts of a dotted quad, or undefined when `ip` is not one. */
function ipv4Parts(ip: unknown): number[] | undefined {
  const m = typeof ip === 'string' ? IPV4_RE.exec(ip) : null;
  const parts = m?.slice(1).map(Number);
  return parts?.every((p) => p <= 255) ? parts : undefined;
}

export function isIpv4(s: unknown): s is string {
  return ipv4Parts(s) !== undefined;
}

function ipv4PartsOrThrow(ip: string): number[] {
  const parts = ipv4Parts(ip);
  if (!parts) throw new Error(`invalid IPv4 address '${ip}'`);
  return parts;
}

export function parseIpv4(ip: string): Buffer {
  return Buffer.from(ipv4PartsOrThrow(ip));
}

export function ipToInt(ip: string): number {
  const p = ipv4PartsOrThrow(ip);
  return ((p[0]! << 24) | (p[1]! << 16) | (p[2]! << 8) | p[3]!) >>> 0;
}

export function intToIp(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}
