/**
 * One typed status helper for every node: colour and shape follow the state, the text is an
 * i18n key (ctport.status.<state>), optionally followed by a short detail.
 */
export type StatusState = 'connected' | 'connecting' | 'disconnected' | 'ringing' | 'incall' | 'playing' | 'recording' | 'collecting' | 'dialling' | 'bridged' | 'error' | 'idle';

type Fill = 'red' | 'green' | 'yellow' | 'blue' | 'grey';
type Shape = 'ring' | 'dot';

export interface StatusTarget {
  status(s: { fill?: Fill; shape?: Shape; text?: string }): void;
  _?: (key: string, subs?: Record<string, unknown>) => string;
}

const LOOK: Record<StatusState, { fill: Fill; shape: Shape }> = {
  connected: { fill: 'green', shape: 'dot' },
  incall: { fill: 'green', shape: 'dot' },
  bridged: { fill: 'green', shape: 'dot' },
  connecting: { fill: 'yellow', shape: 'ring' },
  ringing: { fill: 'yellow', shape: 'ring' },
  dialling: { fill: 'yellow', shape: 'ring' },
  collecting: { fill: 'blue', shape: 'ring' },
  playing: { fill: 'blue', shape: 'dot' },
  recording: { fill: 'blue', shape: 'dot' },
  disconnected: { fill: 'red', shape: 'ring' },
  error: { fill: 'red', shape: 'ring' },
  idle: { fill: 'grey', shape: 'ring' },
};

export function statusLook(state: StatusState): { fill: Fill; shape: Shape } {
  return LOOK[state];
}

/**
 * Set a node's status: `setStatus(node, 'playing', 'port 2', RED._)`. `t` is the runtime's
 * translator (RED._), which resolves `ctport.status.<state>` in the node set's catalog.
 */
export function setStatus(node: StatusTarget, state: StatusState, detail?: string, t?: (key: string) => string): void {
  const key = `ctport.status.${state}`;
  const translate = t ?? node._;
  let text = translate ? translate(key) : state;
  if (!text || text === key) text = state;
  if (detail) text += ` (${detail})`;
  node.status({ ...LOOK[state], text });
}

export function clearStatus(node: StatusTarget): void {
  node.status({});
}
