export { CtServer, CtServerOptions, BoundAddresses, BindError, SERVER_VERSION } from './server';
export { main as runCli, parseArgs, USAGE } from './cli';
export * from './sip';
export { SipCaller } from './sip-caller';
