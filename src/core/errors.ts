/**
 * Typed errors thrown by the core. Every error carries a stable `code` so callers
 * (and the Node-RED nodes) can branch on it without parsing messages.
 */
export class CtError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = new.target.name;
    this.code = code;
  }
}

/** A line from the wire that does not follow the protocol. */
export class ProtocolError extends CtError {
  readonly line?: string;
  constructor(message: string, line?: string) {
    super('EPROTO', line === undefined ? message : `${message} (line: ${JSON.stringify(line.slice(0, 200))})`);
    this.line = line;
  }
}

/** A line longer than the splitter allows; the connection survives, the line is dropped. */
export class LineTooLongError extends ProtocolError {
  readonly length: number;
  /** The first characters of the discarded line (up to 80), to tell which reply it was. */
  readonly head: string;
  constructor(limit: number, length: number, head = '') {
    super(`line longer than ${limit} bytes (${length} bytes received without a newline); it was discarded`);
    (this as { code: string }).code = 'ELINETOOLONG';
    this.length = length;
    this.head = head;
  }
}

/** A bad argument given to a command, found before anything was sent. */
export class ValidationError extends CtError {
  readonly command?: string;
  readonly argument?: string;
  constructor(message: string, command?: string, argument?: string) {
    const where = command ? `${command}${argument ? ` (${argument})` : ''}: ` : '';
    super('EINVAL', where + message);
    this.command = command;
    this.argument = argument;
  }
}

/** Unknown command name. */
export class UnknownCommandError extends ValidationError {
  constructor(name: string) {
    super(`unknown command "${name}"`);
    (this as { code: string }).code = 'EUNKNOWNCMD';
  }
}

/** The connection is not up, or went down while a command was pending. */
export class ConnectionError extends CtError {
  constructor(code: string, message: string) {
    super(code, message);
  }
}

export class NotConnectedError extends ConnectionError {
  constructor(what: string) {
    super('ENOTCONN', `${what} is not connected`);
  }
}

export class DisconnectedError extends ConnectionError {
  readonly command?: string;
  constructor(what: string, command?: string) {
    super('EDISCONNECTED', `${what} disconnected${command ? ` before "${command}" was answered` : ''}`);
    this.command = command;
  }
}

/** The server refused the connection because another client holds the port. */
export class PortBusyError extends ConnectionError {
  constructor(message: string) {
    super('EPORTBUSY', message);
  }
}

/** Audio file could not be found or is outside the allowed folders. */
export class AudioPathError extends CtError {
  readonly tried: string[];
  constructor(code: string, message: string, tried: string[] = []) {
    super(code, message);
    this.tried = tried;
  }
}

/** The ctserver process could not be started, crashed too often, or could not bind. */
export class SupervisorError extends CtError {
  constructor(code: string, message: string) {
    super(code, message);
  }
}
