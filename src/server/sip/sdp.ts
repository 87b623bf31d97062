/**
 * Minimal audio SDP (RFC 4566 / RFC 3264 offer-answer) built and parsed with sdp-transform.
 *
 * We only ever offer one audio stream: G.711 u-law (PT 0), G.711 A-law (PT 8) and RFC 4733
 * telephone-event (dynamic PT 101, events 0-16 = DTMF 0-9 * # A-D flash), 20 ms packets.
 */
import { isIPv4, isIPv6 } from 'node:net';
import * as sdpTransform from 'sdp-transform';

export type AudioCodecName = 'PCMU' | 'PCMA';
export type SdpDirection = 'sendrecv' | 'sendonly' | 'recvonly' | 'inactive';

export interface SdpCodec {
  pt: number;
  name: string;
  rate: number;
}

export interface BuildAudioSdpOptions {
  /** IPv4 address put in o= and c= (where we receive RTP). */
  address: string;
  /** RTP port (even, by convention); 0 rejects the stream (RFC 3264 section 6). */
  port: number;
  /** o= session id; default: random. Keep it across re-offers of one session. */
  sessionId?: number | string;
  /** o= session version; default 1. Must grow on every changed re-offer. */
  sessionVersion?: number;
  /** Codecs in order of preference; default ['PCMU', 'PCMA']. */
  codecs?: AudioCodecName[];
  /** Payload type for telephone-event, or false to leave it out; default 101. */
  telephoneEvent?: number | false;
  /** Default 'sendrecv'. */
  direction?: SdpDirection;
  /** Packet time in ms; default 20. */
  ptime?: number;
  /** s= line; default 'ctport'. */
  sessionName?: string;
}

export interface ParsedAudioSdp {
  /** Where the peer wants RTP sent (media-level c= wins over session-level c=). */
  address: string;
  /** RTP port of the first audio stream; 0 means the stream was rejected/disabled. */
  port: number;
  /** Payload types from the m= line, in the peer's order of preference. */
  payloads: number[];
  /** One entry per payload type we could name (a=rtpmap, or the RFC 3551 static table). */
  codecs: SdpCodec[];
  /** Payload type of telephone-event/8000 if offered. */
  telephoneEvent?: number;
  direction: SdpDirection;
  ptime?: number;
  /** o= session id and version, to recognise re-offers. */
  sessionId: string;
  sessionVersion: number;
}

const STATIC_CODECS: Record<AudioCodecName, SdpCodec> = {
  PCMU: { pt: 0, name: 'PCMU', rate: 8000 },
  PCMA: { pt: 8, name: 'PCMA', rate: 8000 },
};

/** RFC 3551 static audio payload types, for m= lines that omit a=rtpmap. */
const STATIC_PAYLOADS: Record<number, SdpCodec> = {
  0: { pt: 0, name: 'PCMU', rate: 8000 },
  3: { pt: 3, name: 'GSM', rate: 8000 },
  4: { pt: 4, name: 'G723', rate: 8000 },
  8: { pt: 8, name: 'PCMA', rate: 8000 },
  9: { pt: 9, name: 'G722', rate: 8000 },
  18: { pt: 18, name: 'G729', rate: 8000 },
};

function randomSessionId(): number {
  // NTP-ish magnitude is customary but any unique integer is fine (RFC 4566 section 5.2).
  return Math.floor(Math.random() * 1e12);
}

/** Build an SDP offer/answer for one audio stream. Throws on a bad address or port. */
export function buildAudioSdp(opts: BuildAudioSdpOptions): string {
  if (!isIPv4(opts.address)) throw new Error(`buildAudioSdp: address must be an IPv4 address, got ${JSON.stringify(opts.address)}`);
  if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) {
    throw new Error(`buildAudioSdp: port must be an integer 0..65535, got ${String(opts.port)}`);
  }
  const names = opts.codecs ?? ['PCMU', 'PCMA'];
  if (names.length === 0) throw new Error('buildAudioSdp: at least one codec is required');
  const codecs = names.map((n) => {
    const c = STATIC_CODECS[n];
    if (!c) throw new Error(`buildAudioSdp: unsupported codec ${JSON.stringify(n)} (PCMU, PCMA)`);
    return c;
  });
  const te = opts.telephoneEvent === undefined ? 101 : opts.telephoneEvent;
  if (te !== false && (!Number.isInteger(te) || te < 96 || te > 127)) {
    throw new Error(`buildAudioSdp: telephoneEvent must be a dynamic payload type 96..127, got ${String(te)}`);
  }
  const rtp: { payload: number; codec: string; rate: number }[] = codecs.map((c) => ({ payload: c.pt, codec: c.name, rate: c.rate }));
  const fmtp: { payload: number; config: string }[] = [];
  if (te !== false) {
    rtp.push({ payload: te, codec: 'telephone-event', rate: 8000 });
    fmtp.push({ payload: te, config: '0-16' });
  }
  const session: sdpTransform.SessionDescription = {
    version: 0,
    origin: {
      username: '-',
      sessionId: opts.sessionId ?? randomSessionId(),
      sessionVersion: opts.sessionVersion ?? 1,
      netType: 'IN',
      ipVer: 4,
      address: opts.address,
    },
    name: opts.sessionName ?? 'ctport',
    connection: { version: 4, ip: opts.address },
    timing: { start: 0, stop: 0 },
    media: [
      {
        type: 'audio',
        port: opts.port,
        protocol: 'RTP/AVP',
        payloads: rtp.map((r) => r.payload).join(' '),
        rtp,
        fmtp,
        ptime: opts.ptime ?? 20,
        direction: opts.direction ?? 'sendrecv',
      },
    ],
  };
  return sdpTransform.write(session);
}

/** Parse the first audio stream of an SDP body. Throws an Error saying what is wrong. */
export function parseAudioSdp(text: string): ParsedAudioSdp {
  if (typeof text !== 'string' || text.trim() === '') throw new Error('SDP: empty body');
  if (!/^\s*v=0\s*$/m.test(text.split(/\r\n|\r|\n/, 1)[0] ?? '')) throw new Error('SDP: first line must be "v=0"');
  let session: sdpTransform.SessionDescription;
  try {
    session = sdpTransform.parse(text);
  } catch (e) {
    throw new Error(`SDP: cannot parse (${(e as Error).message})`);
  }
  if (!session.origin) throw new Error('SDP: missing o= line');
  const media = (session.media ?? []).find((m) => m.type === 'audio');
  if (!media) throw new Error('SDP: no m=audio line');
  if (!Number.isInteger(media.port) || media.port < 0 || media.port > 65535) throw new Error('SDP: bad port in m=audio line');
  if (!/^RTP\/S?AVP/.test(media.protocol ?? '')) throw new Error(`SDP: unsupported audio transport ${JSON.stringify(media.protocol)}`);
  const conn = media.connection ?? session.connection;
  if (!conn || !conn.ip) throw new Error('SDP: no c= line for the audio stream');
  const address = conn.ip.split('/')[0];
  if (!isIPv4(address) && !isIPv6(address)) throw new Error(`SDP: c= address ${JSON.stringify(conn.ip)} is not an IP address`);
  const payloadText = String(media.payloads ?? '').trim();
  if (payloadText === '') throw new Error('SDP: m=audio line lists no payload types');
  const payloads = payloadText.split(/\s+/).map((p) => {
    const n = Number(p);
    if (!/^\d+$/.test(p) || n > 127) throw new Error(`SDP: bad payload type ${JSON.stringify(p)} in m=audio line`);
    return n;
  });
  const codecs: SdpCodec[] = [];
  let telephoneEvent: number | undefined;
  for (const pt of payloads) {
    const map = (media.rtp ?? []).find((r) => r.payload === pt);
    const codec = map ? { pt, name: map.codec, rate: map.rate ?? 8000 } : STATIC_PAYLOADS[pt];
    if (!codec) continue;
    codecs.push(codec);
    if (telephoneEvent === undefined && codec.name.toLowerCase() === 'telephone-event' && codec.rate === 8000) telephoneEvent = pt;
  }
  const direction: SdpDirection = media.direction ?? session.direction ?? 'sendrecv';
  const result: ParsedAudioSdp = {
    address,
    port: media.port,
    payloads,
    codecs,
    direction,
    sessionId: String(session.origin.sessionId),
    sessionVersion: Number(session.origin.sessionVersion),
  };
  if (telephoneEvent !== undefined) result.telephoneEvent = telephoneEvent;
  if (media.ptime !== undefined) result.ptime = media.ptime;
  return result;
}
