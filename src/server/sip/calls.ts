/**
 * INVITE dialogs: InboundCall (we are the UAS) and OutboundCall (we are the UAC).
 *
 * Transactions (retransmission of requests and non-2xx responses, ACK of non-2xx, absorbing
 * retransmitted requests) are done by the sip package's transaction layer. What RFC 3261 leaves
 * to the "TU core" is done here:
 *  - UAS: retransmit the 2xx to INVITE until the ACK arrives (13.3.1.4), end with BYE after 64*T1;
 *  - UAC: ACK every 2xx, retransmissions included (13.2.2.4); ACK+BYE a 2xx that crossed our
 *    CANCEL (or came from a second fork);
 *  - dialog state (12): tags, CSeq, remote target, route set; in-dialog BYE / INFO.
 */
import { EventEmitter } from 'node:events';
import * as sip from 'sip';
import { parseAudioSdp, type ParsedAudioSdp } from './sdp';
import type { UdpTarget } from './transport';
import {
  T1,
  T2,
  TIMEOUT_64T1,
  TimerSet,
  bodyFromWire,
  bodyToWire,
  headerText,
  paramString,
  quoteDisplayName,
  randomToken,
  reasonPhrase,
  tagOf,
  unquote,
  uriUser,
} from './util';

/** Why a call ended (second argument of 'ended' says who ended it). */
export type CallEndReason =
  | 'remote bye' // the peer sent BYE
  | 'remote cancel' // the caller cancelled before we answered
  | 'local hangup' // hangup() after answer (BYE) or before answer on an inbound call (603)
  | 'local cancel' // cancel() / hangup() of an outbound call before answer
  | 'rejected' // InboundCall.reject()
  | 'failed' // OutboundCall got a final status >= 300 (or 408 timeout / 503 transport failure)
  | 'ack timeout' // we answered but no ACK came within 64*T1 = 32 s (we sent BYE)
  | 'ua stopped'; // SipUA.stop()

export type CallEndedBy = 'local' | 'remote';

export type InboundCallState = 'incoming' | 'ringing' | 'answered' | 'confirmed' | 'ended';
export type OutboundCallState = 'calling' | 'proceeding' | 'cancelling' | 'confirmed' | 'ended';

export interface InfoEvent {
  contentType: string;
  body: string;
}

export interface CallParty {
  /** User part of the From URI ('' if none). */
  number: string;
  /** Display name, unquoted ('' if none). */
  name: string;
  uri: string;
}

/** How the UA wants a request's responses reported. @internal */
export interface RequestCallbacks {
  /** Every response (1xx, final, and for INVITE retransmitted 2xx). */
  onResponse(rs: sip.SipResponse, fromNetwork: boolean): void;
  /** The UA stopped before a final response arrived. */
  onAbort?(why: string): void;
}

/**
 * Plumbing between SipUA and its calls. Internal: not part of the public API even though the
 * call constructors mention it.
 * @internal
 */
export interface UaCore {
  readonly timers: TimerSet;
  readonly userAgent: string;
  readonly user: string;
  readonly stopping: boolean;
  log(line: string): void;
  /** Our Contact URI: sip:user@host:port. */
  contactUri(user?: string): string;
  /** A fresh top Via (the transport fills in sent-by; the transaction layer the branch). */
  newVia(): sip.Via;
  /** Send a request in a new client transaction, toward `hop` (a URI). */
  sendRequest(rq: sip.SipRequest, hop: string | sip.SipUri, cbs: RequestCallbacks): void;
  /** Send an ACK for a 2xx (no transaction, RFC 3261 17.1.1.3) toward `hop`. */
  sendAck(ack: sip.SipRequest, hop: string | sip.SipUri): void;
  /** Re-send a response outside its transaction (2xx retransmission). */
  sendResponseDirect(rs: sip.SipResponse, target: UdpTarget): void;
  responseTarget(rq: sip.SipRequest): UdpTarget;
  makeResponse(
    rq: sip.SipRequest,
    status: number,
    reason?: string,
    ext?: { toTag?: string; headers?: Record<string, unknown>; content?: string },
  ): sip.SipResponse;
  /** Allow header value. */
  readonly allow: string;
  /** SDP used by InboundCall.answer() without argument. */
  defaultSdp?: (call?: InboundCall) => string;
  /** Drop a call from the dialog table. */
  forget(call: SipCall): void;
}

/** RFC 3261 section 12 dialog state. */
interface DialogState {
  callId: string;
  localTag: string;
  remoteTag?: string;
  local: { name?: string; uri: string };
  remote: { name?: string; uri: string };
  /** Contact of the peer: Request-URI of in-dialog requests. */
  remoteTarget: string;
  routeSet: sip.RouteEntry[];
  localSeq: number;
  remoteSeq?: number;
}

function initialCSeq(): number {
  // Any value below 2^31 (RFC 3261 8.1.1.5); keep it small and readable.
  return 1 + Math.floor(Math.random() * 10000);
}

function contentType(m: sip.SipMessage): string {
  return (headerText(m.headers, 'content-type') ?? '').trim();
}

function isSdp(m: sip.SipMessage): boolean {
  return /^application\/sdp\b/i.test(contentType(m));
}

function firstContactUri(m: sip.SipMessage): string | undefined {
  const c = m.headers.contact;
  return Array.isArray(c) && c.length > 0 && typeof c[0].uri === 'string' ? c[0].uri : undefined;
}

/** Common part of inbound and outbound calls: the dialog and in-dialog requests. */
export abstract class SipCall extends EventEmitter {
  /** Call-ID. */
  readonly id: string;
  abstract readonly direction: 'inbound' | 'outbound';
  /** Last final status of the INVITE (sent for inbound calls, received for outbound calls). */
  status?: number;
  /** Reason phrase going with `status`. */
  reason?: string;
  /** Set once the call has ended. */
  endReason?: CallEndReason;
  /** Who ended it (set together with endReason). */
  endedBy?: CallEndedBy;
  /** Parsed SDP of the peer (offer for inbound calls, answer for outbound calls). */
  remoteSdp?: ParsedAudioSdp;
  /** The peer's raw SDP text. */
  remoteSdpText?: string;

  /** @internal */
  protected readonly core: UaCore;
  /** @internal */
  protected readonly dlg: DialogState;
  private endedEmitted = false;

  /** @internal */
  protected constructor(core: UaCore, dlg: DialogState) {
    super();
    this.core = core;
    this.dlg = dlg;
    this.id = dlg.callId;
  }

  abstract get state(): string;

  /** True once 'ended' has been emitted. */
  get ended(): boolean {
    return this.endedEmitted;
  }

  /** Dialog-table key (Call-ID + our tag). @internal */
  get key(): string {
    return `${this.dlg.callId}\n${this.dlg.localTag}`;
  }

  /** Our tag (To tag for inbound calls, From tag for outbound calls). */
  get localTag(): string {
    return this.dlg.localTag;
  }

  /** The peer's tag, once known. */
  get remoteTag(): string | undefined {
    return this.dlg.remoteTag;
  }

  /** Whether the dialog is established (requests may be sent in it). */
  protected abstract established(): boolean;

  /**
   * Send INFO in the dialog (RFC 6086), e.g. DTMF as application/dtmf-relay.
   * Resolves with the final status; rejects if the call is not established or the UA stops.
   */
  info(contentTypeValue: string, body: string): Promise<number> {
    if (!this.established() || this.core.stopping) {
      return Promise.reject(new Error(`INFO: call ${this.id} is not established (state ${this.state})`));
    }
    if (/[\r\n]/.test(contentTypeValue)) return Promise.reject(new Error('INFO: content type must not contain CR/LF'));
    return new Promise((resolve, reject) => {
      const { rq, hop } = this.buildInDialog('INFO');
      rq.headers['content-type'] = contentTypeValue;
      rq.content = bodyToWire(body);
      this.core.sendRequest(rq, hop, {
        onResponse: (rs) => {
          if (rs.status >= 200) resolve(rs.status);
        },
        onAbort: (why) => reject(new Error(`INFO: ${why}`)),
      });
    });
  }

  /** Build an in-dialog request (RFC 3261 12.2.1.1), loose or strict routing. @internal */
  protected buildInDialog(method: string, seq?: number): { rq: sip.SipRequest; hop: string | sip.SipUri } {
    const d = this.dlg;
    const cseq = seq ?? ++d.localSeq;
    let uri: string = d.remoteTarget;
    let route: sip.RouteEntry[] = d.routeSet.map((r) => ({ ...r }));
    let hop: string | sip.SipUri = uri;
    if (route.length > 0) {
      const first = sip.parseUri(route[0].uri);
      if (first && Object.prototype.hasOwnProperty.call(first.params, 'lr')) {
        hop = route[0].uri; // loose routing: send to the first route, Request-URI = remote target
      } else if (first) {
        // Strict router: it becomes the Request-URI, the remote target goes last in Route.
        uri = sip.stringifyUri({ ...first, headers: {} });
        hop = uri;
        route = [...route.slice(1), { uri: d.remoteTarget, params: {} }];
      }
    }
    const rq: sip.SipRequest = {
      method,
      uri,
      headers: {
        via: [this.core.newVia()],
        'max-forwards': '70',
        to: { name: d.remote.name, uri: d.remote.uri, params: d.remoteTag ? { tag: d.remoteTag } : {} },
        from: { name: d.local.name, uri: d.local.uri, params: { tag: d.localTag } },
        'call-id': d.callId,
        cseq: { seq: cseq, method },
      },
    };
    if (route.length > 0) rq.headers.route = route;
    rq.headers['user-agent'] = this.core.userAgent;
    return { rq, hop };
  }

  /** Fire-and-forget BYE (its response is only logged). */
  protected sendBye(): void {
    const { rq, hop } = this.buildInDialog('BYE');
    this.core.sendRequest(rq, hop, {
      onResponse: (rs) => {
        if (rs.status >= 200) this.core.log(`SIP call ${this.id}: BYE answered ${rs.status} ${rs.reason}`);
      },
    });
  }

  /** Emit 'ended' exactly once. `keep` leaves the dialog in the table (waiting for an ACK). */
  protected finish(reason: CallEndReason, by: CallEndedBy, keep = false): void {
    if (this.endedEmitted) return;
    this.endedEmitted = true;
    this.endReason = reason;
    this.endedBy = by;
    this.markEnded();
    if (!keep) this.core.forget(this);
    this.core.log(`SIP call ${this.id} ended: ${reason} (${by})`);
    this.emit('ended', reason);
  }

  protected abstract markEnded(): void;

  /**
   * Common in-dialog checks (RFC 3261 12.2.2): remote tag and CSeq order. Returns false when
   * the request was answered with an error here. @internal
   */
  protected checkInDialog(rq: sip.SipRequest, tx: sip.ServerTransaction): boolean {
    const fromTag = tagOf(rq.headers.from);
    if (this.dlg.remoteTag && fromTag !== this.dlg.remoteTag) {
      tx.send(this.core.makeResponse(rq, 481));
      return false;
    }
    const seq = rq.headers.cseq!.seq;
    if (this.dlg.remoteSeq !== undefined && seq <= this.dlg.remoteSeq) {
      tx.send(this.core.makeResponse(rq, 500, 'Server Internal Error (CSeq out of order)'));
      return false;
    }
    this.dlg.remoteSeq = seq;
    return true;
  }

  /** In-dialog INFO, OPTIONS, re-INVITE (488) and others (405). @internal */
  protected handleCommonInDialog(rq: sip.SipRequest, tx: sip.ServerTransaction): void {
    switch (rq.method) {
      case 'INFO':
        tx.send(this.core.makeResponse(rq, 200));
        this.emit('info', { contentType: contentType(rq), body: bodyFromWire(rq.content) } satisfies InfoEvent);
        return;
      case 'OPTIONS':
        tx.send(this.core.makeResponse(rq, 200, 'OK', { headers: { allow: this.core.allow, accept: 'application/sdp' } }));
        return;
      case 'INVITE':
        // Re-INVITE (hold, session timers, codec change) is not supported yet. A failed
        // re-INVITE leaves the session unchanged (RFC 3261 14.1).
        tx.send(this.core.makeResponse(rq, 488, 'Not Acceptable Here (re-INVITE not supported)'));
        return;
      case 'UPDATE':
      case 'PRACK':
      case 'REFER':
      case 'NOTIFY':
      case 'SUBSCRIBE':
      case 'MESSAGE':
      default:
        tx.send(this.core.makeResponse(rq, 405, 'Method Not Allowed', { headers: { allow: this.core.allow } }));
        return;
    }
  }

  /** A request whose To tag names this dialog. @internal */
  abstract handleInDialog(rq: sip.SipRequest, tx: sip.ServerTransaction): void;
  /** An ACK whose To tag names this dialog. @internal */
  abstract handleAck(rq: sip.SipRequest): void;
  /** SipUA.stop(): end the call best-effort (BYE / CANCEL / 503). @internal */
  abstract terminate(): void;
}

/** A call we received (we are the UAS). Emitted by SipUA as 'invite'. */
export class InboundCall extends SipCall {
  readonly direction = 'inbound' as const;
  readonly from: CallParty;
  readonly to: { user: string; uri: string };
  /** Request-URI of the INVITE (the dialled number is usually its user part). */
  readonly requestUri: string;
  /** Via branch of the INVITE (matches CANCEL). @internal */
  readonly inviteBranch: string;
  /** CSeq number of the INVITE. @internal */
  readonly inviteSeq: number;
  private _state: InboundCallState = 'incoming';
  private readonly invite: sip.SipRequest;
  private readonly inviteTx: sip.ServerTransaction;
  private okResponse?: sip.SipResponse;
  private retransmitTimer?: NodeJS.Timeout;
  private ackTimer?: NodeJS.Timeout;
  /** hangup() came before the ACK: send BYE once it arrives (RFC 3261 15). */
  private byeOnAck = false;
  private localSdpText?: string;

  /** @internal created by SipUA */
  constructor(core: UaCore, invite: sip.SipRequest, tx: sip.ServerTransaction) {
    const h = invite.headers;
    const fromAor = h.from!;
    const toAor = h.to!;
    super(core, {
      callId: h['call-id']!,
      localTag: randomToken(5),
      remoteTag: tagOf(fromAor),
      local: { name: toAor.name, uri: toAor.uri },
      remote: { name: fromAor.name, uri: fromAor.uri },
      remoteTarget: firstContactUri(invite) ?? sip.stringifyUri(invite.uri),
      // UAS: route set = Record-Route in order (RFC 3261 12.1.1).
      routeSet: (h['record-route'] ?? []).map((r) => ({ ...r })),
      localSeq: initialCSeq(),
      remoteSeq: h.cseq!.seq,
    });
    this.invite = invite;
    this.inviteTx = tx;
    this.inviteBranch = String(paramString(h.via![0].params, 'branch') ?? '');
    this.inviteSeq = h.cseq!.seq;
    this.from = { number: uriUser(fromAor.uri), name: unquote(fromAor.name), uri: fromAor.uri };
    this.to = { user: uriUser(toAor.uri), uri: toAor.uri };
    this.requestUri = sip.stringifyUri(invite.uri);
    if (invite.content && isSdp(invite)) {
      this.remoteSdpText = bodyFromWire(invite.content);
      this.remoteSdp = parseAudioSdp(this.remoteSdpText); // SipUA checked it already
    }
  }

  get state(): InboundCallState {
    return this._state;
  }

  /** A header of the INVITE as text (e.g. 'User-Agent', 'X-Whatever'), or undefined. */
  header(name: string): string | undefined {
    return headerText(this.invite.headers, name);
  }

  protected established(): boolean {
    return this._state === 'answered' || this._state === 'confirmed';
  }

  protected markEnded(): void {
    this._state = 'ended';
  }

  private dialogHeaders(): Record<string, unknown> {
    const headers: Record<string, unknown> = { contact: [{ uri: this.core.contactUri(), params: {} }] };
    // 18x/2xx copy Record-Route (RFC 3261 12.1.1).
    if (this.invite.headers['record-route']) headers['record-route'] = this.invite.headers['record-route'];
    return headers;
  }

  /** Send 180 Ringing. Returns false (and does nothing) if the call is past that point. */
  ringing(): boolean {
    if (this._state !== 'incoming' && this._state !== 'ringing') return false;
    this._state = 'ringing';
    this.inviteTx.send(this.core.makeResponse(this.invite, 180, 'Ringing', { toTag: this.dlg.localTag, headers: this.dialogHeaders() }));
    return true;
  }

  /**
   * Answer with 200 OK carrying `sdp` (our answer, or our offer if the INVITE had none;
   * default: the SipUA's `defaultSdp()`).
   * The 200 is retransmitted (T1, doubling up to T2) until the ACK arrives; after 64*T1 without
   * ACK the call is ended with BYE ('ack timeout'). Returns false if the call cannot be answered
   * any more (cancelled, rejected...). Throws if `sdp` is not a valid audio SDP.
   */
  answer(sdp?: string): boolean {
    if (this._state !== 'incoming' && this._state !== 'ringing') return false;
    if (sdp === undefined) sdp = this.core.defaultSdp?.(this);
    if (sdp === undefined) throw new Error('answer: no SDP given and the SipUA has no defaultSdp');
    parseAudioSdp(sdp); // throws on bad SDP: a programming error on our side
    this.localSdpText = sdp;
    const ok = this.core.makeResponse(this.invite, 200, 'OK', {
      toTag: this.dlg.localTag,
      headers: { ...this.dialogHeaders(), allow: this.core.allow, 'content-type': 'application/sdp' },
      content: bodyToWire(sdp),
    });
    this.okResponse = ok;
    this._state = 'answered';
    this.status = 200;
    this.reason = 'OK';
    this.inviteTx.send(ok); // the transaction moves to "accepted" and will not retransmit it
    const target = this.core.responseTarget(this.invite);
    let interval = T1;
    const retransmit = (): void => {
      this.retransmitTimer = undefined;
      if (this._state !== 'answered' && !this.byeOnAck) return;
      this.core.sendResponseDirect(ok, target);
      interval = Math.min(interval * 2, T2);
      this.retransmitTimer = this.core.timers.set(retransmit, interval);
    };
    this.retransmitTimer = this.core.timers.set(retransmit, interval);
    this.ackTimer = this.core.timers.set(() => this.onAckTimeout(), TIMEOUT_64T1);
    return true;
  }

  /** Our SDP as sent in the 200 OK. */
  get localSdp(): string | undefined {
    return this.localSdpText;
  }

  /** Reject with a final status 300..699 (default 486 Busy Here). False if already answered/ended. */
  reject(code = 486, reason?: string): boolean {
    if (!Number.isInteger(code) || code < 300 || code > 699) throw new Error(`reject: status must be 300..699, got ${code}`);
    if (this._state !== 'incoming' && this._state !== 'ringing') return false;
    this.sendFinal(code, reason);
    this.finish('rejected', 'local');
    return true;
  }

  /**
   * End the call: BYE once answered (after the ACK if it is still outstanding, RFC 3261 15),
   * 603 Decline before. 'ended' is emitted right away with 'local hangup'.
   */
  hangup(): void {
    switch (this._state) {
      case 'incoming':
      case 'ringing':
        this.sendFinal(603, 'Decline');
        this.finish('local hangup', 'local');
        break;
      case 'answered':
        this.byeOnAck = true;
        this.finish('local hangup', 'local', true);
        break;
      case 'confirmed':
        this.sendBye();
        this.finish('local hangup', 'local');
        break;
      default:
        break;
    }
  }

  private sendFinal(code: number, reason?: string): void {
    this.status = code;
    this.reason = reason ?? reasonPhrase(code);
    this.inviteTx.send(this.core.makeResponse(this.invite, code, this.reason, { toTag: this.dlg.localTag }));
  }

  private stopRetransmitting(): void {
    this.core.timers.clear(this.retransmitTimer);
    this.core.timers.clear(this.ackTimer);
    this.retransmitTimer = undefined;
    this.ackTimer = undefined;
  }

  private onAckTimeout(): void {
    this.ackTimer = undefined;
    this.stopRetransmitting();
    this.core.log(`SIP call ${this.id}: no ACK for our 200 within ${TIMEOUT_64T1} ms, sending BYE`);
    // RFC 3261 13.3.1.4: the dialog is confirmed but the session SHOULD be ended with BYE.
    this.sendBye();
    if (this.byeOnAck) {
      this.byeOnAck = false;
      this.core.forget(this);
    } else {
      this.finish('ack timeout', 'local');
    }
  }

  /** @internal */
  handleAck(rq: sip.SipRequest): void {
    if (rq.headers.cseq!.seq !== this.invite.headers.cseq!.seq) return; // not for our INVITE
    if (this._state === 'answered' || this.byeOnAck) {
      this.stopRetransmitting();
      if (rq.content && isSdp(rq) && !this.remoteSdp) {
        // Late offer: the answer comes in the ACK (RFC 3261 13.2.1).
        try {
          this.remoteSdpText = bodyFromWire(rq.content);
          this.remoteSdp = parseAudioSdp(this.remoteSdpText);
        } catch (e) {
          this.core.log(`SIP call ${this.id}: bad SDP in ACK: ${(e as Error).message}`);
        }
      }
      if (this.byeOnAck) {
        this.byeOnAck = false;
        this.sendBye();
        this.core.forget(this);
        return;
      }
      this._state = 'confirmed';
      this.emit('confirmed');
    }
    // ACK retransmissions in 'confirmed' are ignored.
  }

  /** A CANCEL matching our INVITE transaction (RFC 3261 9.2). @internal */
  handleCancel(rq: sip.SipRequest, tx: sip.ServerTransaction): void {
    tx.send(this.core.makeResponse(rq, 200)); // the CANCEL itself always gets 200 when it matched
    if (this._state !== 'incoming' && this._state !== 'ringing') return; // too late: no effect
    this.sendFinal(487, 'Request Terminated');
    this.emit('cancel');
    this.finish('remote cancel', 'remote');
  }

  /** @internal */
  handleInDialog(rq: sip.SipRequest, tx: sip.ServerTransaction): void {
    if (!this.checkInDialog(rq, tx)) return;
    if (rq.method === 'BYE') {
      tx.send(this.core.makeResponse(rq, 200));
      this.stopRetransmitting();
      if (this.ended) {
        // We had hung up and were waiting for the ACK to send our BYE: the peer beat us to it.
        this.byeOnAck = false;
        this.core.forget(this);
        return;
      }
      if (this._state === 'incoming' || this._state === 'ringing') {
        // BYE on an early dialog: the INVITE is over too (RFC 3261 15.1.2).
        this.sendFinal(487, 'Request Terminated');
      }
      this.emit('bye');
      this.finish('remote bye', 'remote');
      return;
    }
    if (this.ended) {
      tx.send(this.core.makeResponse(rq, 481));
      return;
    }
    this.handleCommonInDialog(rq, tx);
  }

  /** @internal */
  terminate(): void {
    this.stopRetransmitting();
    if (this.byeOnAck) {
      this.byeOnAck = false;
      this.sendBye();
      this.core.forget(this);
      return;
    }
    switch (this._state) {
      case 'incoming':
      case 'ringing':
        this.sendFinal(503, 'Service Unavailable');
        break;
      case 'answered':
      case 'confirmed':
        this.sendBye();
        break;
      default:
        break;
    }
    this.finish('ua stopped', 'local');
  }
}

export interface InviteOptions {
  /** Calling party: From user part and display name (default: the UA's user, no name). */
  from?: { number: string; name?: string };
  /** Our SDP offer (required: no late offer). */
  sdp: string;
  /** Extra headers, e.g. { 'X-Test': '1' }. Core headers (Via, From, To, Call-ID...) are refused. */
  headers?: Record<string, string>;
}

const RESERVED_HEADERS = new Set([
  'via',
  'from',
  'to',
  'call-id',
  'cseq',
  'contact',
  'content-length',
  'content-type',
  'max-forwards',
  'route',
  'record-route',
]);

/** A call we placed (we are the UAC). Returned by SipUA.invite(). */
export class OutboundCall extends SipCall {
  readonly direction = 'outbound' as const;
  /** Target URI as given to invite(). */
  readonly uri: string;
  private _state: OutboundCallState = 'calling';
  private readonly invite: sip.SipRequest;
  private inviteSent = false;
  private cancelPending = false;
  private cancelTimer?: NodeJS.Timeout;
  private ack?: sip.SipRequest;
  private ackHop?: string | sip.SipUri;
  private aborted = false;

  /** @internal created by SipUA.invite() */
  constructor(core: UaCore, uri: string, opts: InviteOptions, localAor: string) {
    const callId = `${randomToken(10)}@ctport`;
    const name = opts.from?.name;
    super(core, {
      callId,
      localTag: randomToken(5),
      local: { name: quoteDisplayName(name), uri: localAor },
      remote: { uri },
      remoteTarget: uri,
      routeSet: [],
      localSeq: initialCSeq(),
    });
    this.uri = uri;
    const headers: sip.SipHeaders = {
      via: [core.newVia()],
      'max-forwards': '70',
      to: { uri, params: {} },
      from: { name: this.dlg.local.name, uri: localAor, params: { tag: this.dlg.localTag } },
      'call-id': callId,
      cseq: { seq: this.dlg.localSeq, method: 'INVITE' },
      contact: [{ uri: core.contactUri(), params: {} }],
      allow: core.allow,
      'user-agent': core.userAgent,
    };
    for (const [k, v] of Object.entries(opts.headers ?? {})) {
      const lk = k.toLowerCase();
      if (RESERVED_HEADERS.has(lk)) throw new Error(`invite: header ${JSON.stringify(k)} is set by the SIP stack and cannot be overridden`);
      if (!/^[A-Za-z0-9!%*_+`'~.-]+$/.test(k)) throw new Error(`invite: bad header name ${JSON.stringify(k)}`);
      if (/[\r\n]/.test(String(v))) throw new Error(`invite: header ${JSON.stringify(k)} must not contain CR/LF`);
      headers[lk] = String(v);
    }
    headers['content-type'] = 'application/sdp';
    this.invite = { method: 'INVITE', uri, headers, content: bodyToWire(opts.sdp) };
  }

  get state(): OutboundCallState {
    return this._state;
  }

  protected established(): boolean {
    return this._state === 'confirmed';
  }

  protected markEnded(): void {
    this._state = 'ended';
  }

  /** Send the INVITE. @internal */
  start(): void {
    this.core.sendRequest(this.invite, this.invite.uri, {
      onResponse: (rs, fromNetwork) => this.onInviteResponse(rs, fromNetwork),
      onAbort: () => {
        this.aborted = true;
      },
    });
    this.inviteSent = true;
  }

  /**
   * Cancel the call before it is answered. RFC 3261 9.1: the CANCEL goes out only once a
   * provisional response came in; the INVITE then ends with 487 ('failed', 487) and 'ended'
   * ('local cancel'). Returns false if the call is already answered or ended.
   */
  cancel(): boolean {
    switch (this._state) {
      case 'calling':
        this.cancelPending = true;
        this._state = 'cancelling';
        this.armCancelTimer();
        return true;
      case 'proceeding':
        this._state = 'cancelling';
        this.sendCancel();
        this.armCancelTimer();
        return true;
      case 'cancelling':
        return true;
      default:
        return false;
    }
  }

  /** BYE once answered, CANCEL before. */
  hangup(): void {
    if (this._state === 'confirmed') {
      this.sendBye();
      this.finish('local hangup', 'local');
    } else {
      this.cancel();
    }
  }

  /** RFC 3261 9.1: no final response 64*T1 after CANCEL: consider the INVITE cancelled. */
  private armCancelTimer(): void {
    if (this.cancelTimer) return;
    this.cancelTimer = this.core.timers.set(() => {
      this.cancelTimer = undefined;
      if (this.ended) return;
      this.status = 408;
      this.reason = 'Request Timeout (no final response after CANCEL)';
      this.emit('failed', 408, this.reason);
      this.finish('local cancel', 'local');
    }, TIMEOUT_64T1);
  }

  private sendCancel(): void {
    const via = this.invite.headers.via?.[0];
    if (!via || !paramString(via.params, 'branch')) return; // INVITE not on the wire yet
    // RFC 3261 9.1: same Request-URI, Call-ID, To, From, CSeq number and top Via (branch!).
    const cancel: sip.SipRequest = {
      method: 'CANCEL',
      uri: this.invite.uri,
      headers: {
        via: [{ ...via, params: { ...via.params } }],
        'max-forwards': '70',
        to: this.invite.headers.to,
        from: this.invite.headers.from,
        'call-id': this.dlg.callId,
        cseq: { seq: this.invite.headers.cseq!.seq, method: 'CANCEL' },
        'user-agent': this.core.userAgent,
      },
    };
    if (this.invite.headers.route) cancel.headers.route = this.invite.headers.route;
    this.core.sendRequest(cancel, this.invite.uri, {
      onResponse: (rs) => {
        if (rs.status >= 200) this.core.log(`SIP call ${this.id}: CANCEL answered ${rs.status} ${rs.reason}`);
      },
    });
  }

  private onInviteResponse(rs: sip.SipResponse, fromNetwork: boolean): void {
    const reason = rs.reason || reasonPhrase(rs.status);
    if (rs.status < 200) {
      if (this.ended) return;
      const toTag = tagOf(rs.headers.to);
      if (toTag && rs.status > 100 && !this.dlg.remoteTag) this.dlg.remoteTag = toTag; // early dialog
      if (this._state === 'calling') this._state = 'proceeding';
      if (this.cancelPending) {
        this.cancelPending = false;
        this.sendCancel();
      }
      this.emit('progress', rs.status, reason);
      return;
    }
    if (rs.status < 300) {
      this.on2xx(rs);
      return;
    }
    // >= 300: the transaction layer has ACKed it.
    this.core.timers.clear(this.cancelTimer);
    this.cancelTimer = undefined;
    if (this.ended || this.ack) return;
    this.status = rs.status;
    this.reason = reason;
    const cancelled = this._state === 'cancelling';
    this.emit('failed', rs.status, reason);
    if (cancelled) this.finish('local cancel', 'local');
    else this.finish('failed', fromNetwork ? 'remote' : 'local');
  }

  /** Every 2xx to the INVITE, retransmissions included, must be ACKed (RFC 3261 13.2.2.4). */
  private on2xx(rs: sip.SipResponse): void {
    const toTag = tagOf(rs.headers.to);
    if (this.ack) {
      if (toTag === this.dlg.remoteTag) {
        this.core.sendAck(this.ack, this.ackHop!);
      } else {
        this.ackAndByeFork(rs);
      }
      return;
    }
    this.core.timers.clear(this.cancelTimer);
    this.cancelTimer = undefined;
    // The dialog is established by the 2xx (RFC 3261 12.1.2).
    this.dlg.remoteTag = toTag;
    this.dlg.remoteTarget = firstContactUri(rs) ?? this.uri;
    this.dlg.routeSet = (rs.headers['record-route'] ?? []).map((r) => ({ ...r })).reverse();
    this.dlg.remote = { name: rs.headers.to?.name, uri: rs.headers.to?.uri ?? this.uri };
    const { rq: ack, hop } = this.buildInDialog('ACK', this.invite.headers.cseq!.seq);
    ack.headers.via![0].params.branch = sip.generateBranch(); // ACK for 2xx is its own transaction
    this.ack = ack;
    this.ackHop = hop;
    this.core.sendAck(ack, hop);
    if (this.ended || this._state === 'cancelling' || this.aborted) {
      // Our CANCEL (or hangup, or stop) crossed the 200: ACK it, then BYE (RFC 3261 9.1/15).
      this.sendBye();
      this.status = rs.status;
      this.reason = rs.reason || 'OK';
      this.finish('local cancel', 'local');
      return;
    }
    this.status = rs.status;
    this.reason = rs.reason || 'OK';
    let sdp: ParsedAudioSdp | undefined;
    let problem: string | undefined;
    if (!rs.content || !isSdp(rs)) {
      problem = 'no SDP answer in the 200 OK';
    } else {
      try {
        this.remoteSdpText = bodyFromWire(rs.content);
        sdp = parseAudioSdp(this.remoteSdpText);
      } catch (e) {
        problem = (e as Error).message;
      }
    }
    if (!sdp) {
      this.core.log(`SIP call ${this.id}: ${problem}; hanging up`);
      this._state = 'confirmed';
      this.sendBye();
      this.emit('failed', 488, `Bad SDP answer: ${problem}`);
      this.finish('failed', 'local');
      return;
    }
    this.remoteSdp = sdp;
    this._state = 'confirmed';
    this.emit('answered', sdp);
  }

  /** A 2xx from another fork: ACK it and BYE that dialog. */
  private ackAndByeFork(rs: sip.SipResponse): void {
    const fork = new ForkLeg(this.core, this.dlg, rs);
    fork.ackAndBye(this.invite.headers.cseq!.seq);
  }

  /** @internal a 2xx retransmission that arrived after the INVITE transaction was gone */
  handleStray2xx(rs: sip.SipResponse): void {
    if (rs.headers.cseq!.seq !== this.invite.headers.cseq!.seq) return;
    this.on2xx(rs);
  }

  /** @internal */
  handleAck(): void {
    /* ACK is never sent to a UAC */
  }

  /** @internal */
  handleInDialog(rq: sip.SipRequest, tx: sip.ServerTransaction): void {
    if (this.ended) {
      tx.send(this.core.makeResponse(rq, 481));
      return;
    }
    // Requests in an early dialog: only from the tag we know, if any.
    const fromTag = tagOf(rq.headers.from);
    if (!this.dlg.remoteTag && fromTag) this.dlg.remoteTag = fromTag;
    if (!this.checkInDialog(rq, tx)) return;
    if (rq.method === 'BYE') {
      tx.send(this.core.makeResponse(rq, 200));
      this.emit('bye');
      this.finish('remote bye', 'remote');
      return;
    }
    this.handleCommonInDialog(rq, tx);
  }

  /** @internal */
  terminate(): void {
    this.core.timers.clear(this.cancelTimer);
    this.cancelTimer = undefined;
    switch (this._state) {
      case 'calling':
      case 'proceeding':
      case 'cancelling':
        if (this.inviteSent) this.sendCancel(); // best effort, provisional or not
        break;
      case 'confirmed':
        this.sendBye();
        break;
      default:
        break;
    }
    this.finish('ua stopped', 'local');
  }
}

/** A throwaway dialog for an extra 2xx from a forking proxy. */
class ForkLeg extends SipCall {
  readonly direction = 'outbound' as const;
  get state(): string {
    return 'ended';
  }
  constructor(core: UaCore, base: DialogState, rs: sip.SipResponse) {
    super(core, {
      ...base,
      remoteTag: tagOf(rs.headers.to),
      remoteTarget: firstContactUri(rs) ?? base.remoteTarget,
      routeSet: (rs.headers['record-route'] ?? []).map((r) => ({ ...r })).reverse(),
      remote: { name: rs.headers.to?.name, uri: rs.headers.to?.uri ?? base.remote.uri },
    });
  }
  ackAndBye(seq: number): void {
    const { rq, hop } = this.buildInDialog('ACK', seq);
    rq.headers.via![0].params.branch = sip.generateBranch();
    this.core.sendAck(rq, hop);
    this.sendBye();
  }
  protected established(): boolean {
    return false;
  }
  protected markEnded(): void {}
  handleInDialog(): void {}
  handleAck(): void {}
  terminate(): void {}
}

// Typed events.
export interface InboundCall {
  on(event: 'confirmed' | 'cancel' | 'bye', listener: () => void): this;
  on(event: 'info', listener: (info: InfoEvent) => void): this;
  on(event: 'ended', listener: (reason: CallEndReason) => void): this;
  once(event: 'confirmed' | 'cancel' | 'bye', listener: () => void): this;
  once(event: 'info', listener: (info: InfoEvent) => void): this;
  once(event: 'ended', listener: (reason: CallEndReason) => void): this;
}

export interface OutboundCall {
  on(event: 'progress', listener: (status: number, reason: string) => void): this;
  on(event: 'answered', listener: (remoteSdp: ParsedAudioSdp) => void): this;
  on(event: 'failed', listener: (status: number, reason: string) => void): this;
  on(event: 'bye', listener: () => void): this;
  on(event: 'info', listener: (info: InfoEvent) => void): this;
  on(event: 'ended', listener: (reason: CallEndReason) => void): this;
  once(event: 'progress', listener: (status: number, reason: string) => void): this;
  once(event: 'answered', listener: (remoteSdp: ParsedAudioSdp) => void): this;
  once(event: 'failed', listener: (status: number, reason: string) => void): this;
  once(event: 'bye', listener: () => void): this;
  once(event: 'info', listener: (info: InfoEvent) => void): this;
  once(event: 'ended', listener: (reason: CallEndReason) => void): this;
}
