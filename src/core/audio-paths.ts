/**
 * Audio file resolution for play and record, as the Perl module did it, plus containment checks.
 *
 * play: a space-separated string or an array of names; a name without an extension gets the
 * default extension ('.au' unless changed). Each name is looked for in: every configured path,
 * the current directory, its `prompts/` subfolder, the name itself when absolute, then the bundled
 * vocabulary folder (`<package root>/resources/vocabulary`, the successor of ctserver's
 * `/var/ctserver/UsMEng`). A miss is an AudioPathError ('ENOAUDIO') that lists every place tried.
 *
 * Containment: unless `allowOutside` is set, a file must lie inside one of the allowed roots
 * (the configured paths, the current directory, `prompts/`, the vocabulary folder) after every
 * symlink is resolved, so neither `..` nor a symlink can reach the rest of the file system.
 *
 * Everything here is async (fs.promises): it runs once per play/record command.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { AudioPathError } from './errors';

/** The package root: this file runs from `<root>/dist/core`. */
const PACKAGE_ROOT = path.resolve(__dirname, '..', '..');

/** The bundled vocabulary folder (numbers and common words, so `play "1 2 3"` speaks). */
export const DEFAULT_VOCABULARY_DIR = path.join(PACKAGE_ROOT, 'resources', 'vocabulary');

/** Extensions a recording may have. */
export const RECORD_EXTENSIONS: readonly string[] = ['.wav', '.au'];

export interface PlayPathOptions {
  /** Search folders, tried first and in order (relative ones are taken from `cwd`). */
  paths?: string[];
  /** The "current directory" of the search (default: process.cwd()). */
  cwd?: string;
  /** Extension given to names that have none (default '.au'; 'wav' and '.wav' both work). */
  defaultExt?: string;
  /** The vocabulary folder searched last (default: DEFAULT_VOCABULARY_DIR). */
  vocabularyDir?: string;
  /** Allow files outside the allowed roots (default false). */
  allowOutside?: boolean;
}

export interface RecordPathOptions {
  /** Folder recordings go into; created (with parents) when missing. */
  recordDir: string;
  /** Extension given to names that have none (default '.wav'). */
  defaultExt?: string;
  /** Allow absolute names / `..` outside recordDir (default false). */
  allowOutside?: boolean;
}

/** Normalise an extension: 'wav' and '.wav' both give '.wav'; '' gives '' (no extension). */
export function normalizeExt(ext: string | undefined | null): string {
  if (ext === undefined || ext === null) return '';
  if (typeof ext !== 'string') throw new AudioPathError('EBADEXT', `extension must be a string, got ${typeof ext}`);
  const e = ext.trim();
  if (e === '' || e === '.') return '';
  if (/[\/\\\0\s]/.test(e)) {
    throw new AudioPathError('EBADEXT', `invalid extension ${JSON.stringify(ext)}`);
  }
  return e.startsWith('.') ? e : `.${e}`;
}

/** Add `ext` to `name` when its last path segment has no extension. */
export function withDefaultExt(name: string, ext: string | undefined | null): string {
  const e = normalizeExt(ext);
  if (e === '') return name;
  if (path.extname(path.basename(name)) !== '') return name;
  return name + e;
}

/**
 * The list of names in a play spec: a string is split on whitespace (empty pieces dropped),
 * an array is copied as is (its items may contain spaces; they are checked later).
 */
export function splitFileList(spec: string | string[]): string[] {
  if (typeof spec === 'string') return spec.split(/\s+/).filter((s) => s.length > 0);
  if (Array.isArray(spec)) {
    return spec.map((item, i) => {
      if (typeof item !== 'string') {
        throw new AudioPathError('EBADNAME', `audio file list item ${i} must be a string, got ${item === null ? 'null' : typeof item}`);
      }
      return item;
    });
  }
  throw new AudioPathError('EBADNAME', `audio file spec must be a string or an array of strings, got ${spec === null ? 'null' : typeof spec}`);
}

function checkName(name: unknown, what: string): asserts name is string {
  if (typeof name !== 'string') throw new AudioPathError('EBADNAME', `${what} must be a string, got ${name === null ? 'null' : typeof name}`);
  if (name.trim().length === 0) throw new AudioPathError('EBADNAME', `${what} is empty`);
  if (name.includes('\0')) throw new AudioPathError('EBADNAME', `${what} ${JSON.stringify(name)} contains a NUL byte`);
}

/** True when `child` is strictly inside folder `parent` (both absolute and normalised). */
function isInside(child: string, parent: string): boolean {
  const rel = path.relative(parent, child);
  if (rel === '' || path.isAbsolute(rel)) return false;
  return rel !== '..' && !rel.startsWith(`..${path.sep}`);
}

interface Root {
  /** As configured (absolute, normalised). */
  given: string;
  /** After realpath (equals `given` when the folder does not exist). */
  real: string;
}

async function realRoots(dirs: string[]): Promise<Root[]> {
  const unique = [...new Set(dirs)];
  return Promise.all(
    unique.map(async (given) => {
      try {
        return { given, real: await fsp.realpath(given) };
      } catch {
        return { given, real: given };
      }
    }),
  );
}

function errCode(err: unknown): string | undefined {
  return err && typeof err === 'object' && 'code' in err ? String((err as { code: unknown }).code) : undefined;
}

function listRoots(roots: Root[]): string {
  return roots.map((r) => r.given).join(', ');
}

/**
 * Resolve a play spec to absolute file paths (symlinks resolved), in order.
 * Throws AudioPathError: 'ENOAUDIO' (not found; `.tried` lists every candidate), 'EOUTSIDE'
 * (outside the allowed folders), 'EBADNAME' (empty name, NUL byte, not a string), 'EBADEXT'.
 */
export async function resolvePlayFiles(spec: string | string[], opts: PlayPathOptions = {}): Promise<string[]> {
  const names = splitFileList(spec);
  if (names.length === 0) throw new AudioPathError('EBADNAME', 'no audio file name given');
  for (const n of names) checkName(n, 'audio file name');

  const cwd = path.resolve(opts.cwd ?? process.cwd());
  const configured = (opts.paths ?? []).map((p, i) => {
    checkName(p, `search path ${i}`);
    return path.resolve(cwd, p);
  });
  const prompts = path.join(cwd, 'prompts');
  const vocab = path.resolve(cwd, opts.vocabularyDir ?? DEFAULT_VOCABULARY_DIR);
  const ext = opts.defaultExt ?? '.au';
  const allowOutside = opts.allowOutside === true;
  const roots = await realRoots([...configured, cwd, prompts, vocab]);

  const result: string[] = [];
  for (const raw of names) {
    const name = withDefaultExt(raw, ext);
    const candidates: string[] = [];
    if (path.isAbsolute(name)) {
      candidates.push(path.normalize(name));
    } else {
      for (const dir of [...configured, cwd, prompts, vocab]) candidates.push(path.join(dir, name));
    }
    const tried = [...new Set(candidates)];
    let found: string | undefined;
    for (const cand of tried) {
      // Lexical check first, so nothing outside the roots is even probed.
      if (!allowOutside && !roots.some((r) => isInside(cand, r.given) || isInside(cand, r.real))) {
        throw new AudioPathError(
          'EOUTSIDE',
          `audio file "${name}" (${cand}) is outside the allowed folders (${listRoots(roots)}); set allowOutside to permit it`,
          [cand],
        );
      }
      let isFile = false;
      try {
        isFile = (await fsp.stat(cand)).isFile();
      } catch {
        isFile = false;
      }
      if (!isFile) continue;
      let real: string;
      try {
        real = await fsp.realpath(cand);
      } catch {
        continue; // vanished between stat and realpath
      }
      if (!allowOutside && !roots.some((r) => isInside(real, r.real))) {
        throw new AudioPathError(
          'EOUTSIDE',
          `audio file "${name}" (${cand}) resolves to ${real}, which is outside the allowed folders (${listRoots(roots)}); set allowOutside to permit it`,
          [cand],
        );
      }
      found = real;
      break;
    }
    if (found === undefined) {
      throw new AudioPathError('ENOAUDIO', `audio file "${name}" not found; tried: ${tried.join(', ')}`, tried);
    }
    result.push(found);
  }
  return result;
}

/**
 * Resolve the file a recording is written to. Relative names go into `recordDir` (created when
 * missing, as are sub folders of it); absolute names must lie inside it unless `allowOutside`.
 * Throws AudioPathError: 'EOUTSIDE' (`..`, absolute name or symlinked folder/file leading outside),
 * 'EBADEXT' (extension other than .wav/.au), 'EBADNAME', 'EISDIR' (the name is a folder).
 */
export async function resolveRecordPath(name: string, opts: RecordPathOptions): Promise<string> {
  checkName(name, 'record file name');
  if (!opts || typeof opts.recordDir !== 'string' || opts.recordDir.trim() === '' || opts.recordDir.includes('\0')) {
    throw new AudioPathError('EBADNAME', 'recordDir must be a non-empty folder name');
  }
  if (/[\/\\]$/.test(name)) throw new AudioPathError('EBADNAME', `record file name "${name}" names a folder, not a file`);
  const allowOutside = opts.allowOutside === true;
  const withExt = withDefaultExt(name, opts.defaultExt ?? '.wav');
  const ext = path.extname(withExt).toLowerCase();
  if (!RECORD_EXTENSIONS.includes(ext)) {
    throw new AudioPathError('EBADEXT', `record file "${withExt}" has extension "${ext}"; only ${RECORD_EXTENSIONS.join(' and ')} can be recorded`);
  }

  const recordDir = path.resolve(opts.recordDir);
  await fsp.mkdir(recordDir, { recursive: true });
  const realDir = await fsp.realpath(recordDir);
  const target = path.resolve(recordDir, withExt);
  const outside = (what: string): AudioPathError =>
    new AudioPathError('EOUTSIDE', `record file "${withExt}" ${what} outside the record folder ${recordDir}; set allowOutside to permit it`, [target]);

  if (!allowOutside && !isInside(target, recordDir) && !isInside(target, realDir)) throw outside(`(${target}) is`);

  const parent = path.dirname(target);
  if (!allowOutside) {
    // Before creating anything, the deepest existing ancestor must really be inside recordDir.
    let probe = parent;
    for (;;) {
      try {
        const real = await fsp.realpath(probe);
        if (real !== realDir && !isInside(real, realDir)) throw outside(`is in ${probe}, which resolves to ${real},`);
        break;
      } catch (err) {
        if (err instanceof AudioPathError) throw err;
        const code = errCode(err);
        if (code !== 'ENOENT') throw new AudioPathError(code ?? 'EIO', `record folder ${probe}: ${(err as Error).message}`, [target]);
        const up = path.dirname(probe);
        if (up === probe) break;
        probe = up;
      }
    }
  }
  try {
    await fsp.mkdir(parent, { recursive: true });
  } catch (err) {
    throw new AudioPathError(errCode(err) ?? 'EIO', `cannot create record folder ${parent}: ${(err as Error).message}`, [target]);
  }
  const realParent = await fsp.realpath(parent);
  if (!allowOutside && realParent !== realDir && !isInside(realParent, realDir)) {
    throw outside(`is in ${parent}, which resolves to ${realParent},`);
  }
  const finalPath = path.join(realParent, path.basename(target));

  let st: import('node:fs').Stats | undefined;
  try {
    st = await fsp.lstat(finalPath);
  } catch (err) {
    if (errCode(err) !== 'ENOENT') throw new AudioPathError(errCode(err) ?? 'EIO', `record file ${finalPath}: ${(err as Error).message}`, [target]);
  }
  if (st?.isDirectory()) throw new AudioPathError('EISDIR', `record file ${finalPath} is a folder`, [target]);
  if (st?.isSymbolicLink() && !allowOutside) {
    let real: string;
    try {
      real = await fsp.realpath(finalPath);
    } catch {
      throw outside(`(${finalPath}) is a dangling symlink, which could point`);
    }
    if (!isInside(real, realDir)) throw outside(`(${finalPath}) is a symlink to ${real},`);
    if ((await fsp.stat(real)).isDirectory()) throw new AudioPathError('EISDIR', `record file ${finalPath} is a folder`, [target]);
  }
  return finalPath;
}
