/** SIP signalling layer of the bundled ctserver. */
export { SipUA } from './ua';
export type { SipUAOptions, SipTraceEvent, SipResponseInfo, RegisterOptions } from './ua';
export { SipCall, InboundCall, OutboundCall } from './calls';
export type {
  CallEndReason,
  CallEndedBy,
  CallParty,
  InboundCallState,
  OutboundCallState,
  InfoEvent,
  InviteOptions,
} from './calls';
export { buildAudioSdp, parseAudioSdp } from './sdp';
export type { AudioCodecName, BuildAudioSdpOptions, ParsedAudioSdp, SdpCodec, SdpDirection } from './sdp';
export { MAX_EXPIRES, DEFAULT_EXPIRES } from './registrar';
