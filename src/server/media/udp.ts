/**
 * UDP sockets for RTP. Node's dgram resolves the address of every send() through its `lookup`
 * function, and the default one (dns.lookup) answers even an IP literal on the next tick: every
 * packet of a media tick would then wait for the whole tick to finish before it went to the
 * kernel. Our lookup answers IPv4 literals at once (a name still goes through dns.lookup), so a
 * packet leaves when its frame is sent.
 */
import dgram from 'node:dgram';
import dns from 'node:dns';
import net from 'node:net';

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string, family: number) => void;

function ipLookup(host: string, options: number | dns.LookupOneOptions, callback: LookupCallback): void {
  if (net.isIPv4(host)) {
    callback(null, host, 4);
    return;
  }
  const opts: dns.LookupOneOptions = typeof options === 'number' ? { family: options } : options;
  dns.lookup(host, opts, callback);
}

/** An unbound IPv4 UDP socket whose send() hands a datagram to an IP address to the kernel at once. */
export function createRtpSocket(): dgram.Socket {
  return dgram.createSocket({ type: 'udp4', lookup: ipLookup as unknown as dgram.SocketOptions['lookup'] });
}
