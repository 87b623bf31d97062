/** In-band signal processing for the ctserver's 8 kHz lines: DTMF, call-progress tones, energy. */
export * from './levels';
export * from './goertzel';
export * from './dtmf';
export * from './tones';
export * from './energy';
