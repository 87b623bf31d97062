/**
 * Level conventions shared by the DSP modules (8 kHz, 16-bit linear PCM).
 *
 * - dBFS: RMS relative to a full-scale square wave (RMS 32768), so a full-scale sine is
 *   -3.01 dBFS. This is what `frameDbfs` reports.
 * - dBm0: per ITU-T G.711, a full-scale sine is +3.14 dBm0 (the A-law figure; mu-law's is
 *   +3.17, the 0.03 dB difference is ignored). So a 0 dBm0 sine has a peak of about 22767 and an
 *   RMS of about 16099, i.e. 0 dBm0 = -6.15 dBFS.
 */

/** Sample rate of every line (G.711 narrowband). */
export const SAMPLE_RATE = 8000;

/** Level of a full-scale sine in dBm0 (G.711, A-law). */
export const FULL_SCALE_SINE_DBM0 = 3.14;

/** Peak amplitude of a 0 dBm0 sine. */
export const DBM0_PEAK = 32767 * Math.pow(10, -FULL_SCALE_SINE_DBM0 / 20);

/** Peak amplitude of a sine at `dbm0`. */
export function dbm0ToPeak(dbm0: number): number {
  return DBM0_PEAK * Math.pow(10, dbm0 / 20);
}

/** Level in dBm0 of a sine with peak amplitude `peak`. */
export function peakToDbm0(peak: number): number {
  return 20 * Math.log10(peak / DBM0_PEAK);
}

/** Peak amplitude of a sine at `dbfs` (RMS re a full-scale square wave). */
export function dbfsToPeak(dbfs: number): number {
  return 32768 * Math.SQRT2 * Math.pow(10, dbfs / 20);
}

/** dBm0 -> dBFS (RMS re full-scale square wave) for a sine. */
export function dbm0ToDbfs(dbm0: number): number {
  return dbm0 + 20 * Math.log10(DBM0_PEAK / Math.SQRT2 / 32768);
}

/** Milliseconds -> samples at 8 kHz (rounded). */
export function msToSamples(ms: number): number {
  return Math.round((ms * SAMPLE_RATE) / 1000);
}
