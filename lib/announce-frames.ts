// The frames a migrated VM announces itself with, written once for the engine (which sends
// them) and the fixtures (which synthesise captures of them): QEMU's RARP
// (net/announce.c announce_self_create) and the guest's gratuitous ARP.
//
// API
//   rarpFrame(mac) -> Buffer(60)
//   gratuitousArpFrame(mac, ip) -> Buffer(60)
import { ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_RARP, parseIpv4, parseMac } from './net-addr.js';

const ARP_HTYPE_ETH = 1;
const ARP_OP_REQUEST = 1;
const ARP_OP_REQUEST_REV = 3;
/** Ethernet minimum frame length without FCS. */
const MIN_FRAME = 60;

const macBytes = (mac: string | Uint8Array): Uint8Array => (typeof mac === 'string' ? parseMac(mac) : mac);

/** The RARP frame of QEMU's announce_self_create, byte for byte (60 bytes). */
export function rarpFrame(mac: string | Uint8Array): Buffer {
  const m = macBytes(mac);
  const b = Buffer.alloc(MIN_FRAME);
  b.fill(0xff, 0, 6);
  b.set(m, 6);
  b.writeUInt16BE(ETHERTYPE_RARP, 12);
  b.writeUInt16BE(ARP_HTYPE_ETH, 14);
  b.writeUInt16BE(ETHERTYPE_IPV4, 16);
  b[18] = 6;
  b[19] = 4;
  b.writeUInt16BE(ARP_OP_REQUEST_REV, 20);
  b.set(m, 22); // sender hw; sender IP 28..31 stays 0
  b.set(m, 32); // target hw; target IP 38..41 and padding stay 0
  return b;
}

/**
 * A gratuitous ARP request: broadcast, sender IP = target IP = `ip`, target MAC zero, as
 * Linux sends it (net/ipv4/arp.c arp_send with a NULL target hw address), padded to 60.
 */
export function gratuitousArpFrame(mac: string | Uint8Array, ip: string): Buffer {
  const m = macBytes(mac);
  const addr = parseIpv4(ip);
  const b = Buffer.alloc(MIN_FRAME);
  b.fill(0xff, 0, 6);
  b.set(m, 6);
  b.writeUInt16BE(ETHERTYPE_ARP, 12);
  b.writeUInt16BE(ARP_HTYPE_ETH, 14);
  b.writeUInt16BE(ETHERTYPE_IPV4, 16);
  b[18] = 6;
  b[19] = 4;
  b.writeUInt16BE(ARP_OP_REQUEST, 20);
  b.set(m, 22);
  b.set(addr, 28);
  b.set(addr, 38);
  return b;
}
