// clearer-nni: make NNI's web UI / REST server listen on the loopback interface only.
//
// Loaded into NNI's Node.js manager with   NODE_OPTIONS="--require /path/to/loopback.js"
// (python -m clearer_nni.experiment run ... does this for you). NNI's REST server calls
// `server.listen(port)` with no host, which Node.js binds to every interface (0.0.0.0 / ::).
// This file patches net.Server.prototype.listen so that a listen() call *without a host* binds to
// 127.0.0.1 instead. Calls that name a host, and listen() on a Unix socket path or a handle, are
// left alone. NNI's own files are not modified.
//
// NNI's web UI "TensorBoard" button makes the manager spawn `tensorboard --bind_all --logdir_spec=...`
// (every interface again, in a Python process this patch cannot reach): child_process.spawn is wrapped
// so that a tensorboard command gets --host=127.0.0.1 in place of --bind_all.
//
// CLEARER_NNI_PUBLIC=1 in the environment turns it off (listen on all interfaces, NNI's own behaviour).
// (Only loopback makes sense as the alternative: NNI's own processes connect to ws://localhost:PORT.)
'use strict';

const net = require('net');

const publicFlag = (process.env.CLEARER_NNI_PUBLIC || '').toLowerCase();
if (!['1', 'true', 'yes', 'on'].includes(publicFlag) && !net.Server.prototype.__clearerLoopback) {
  const host = '127.0.0.1';
  const originalListen = net.Server.prototype.listen;

  const isPort = (value) =>
    typeof value === 'number' || (typeof value === 'string' && /^\d+$/.test(value));

  net.Server.prototype.listen = function clearerLoopbackListen(...args) {
    const first = args[0];
    if (args.length === 0 || typeof first === 'function') {
      // listen() / listen(callback): a random port on all interfaces -> on `host`
      args = [0, host, ...args];
    } else if (first === undefined || first === null || isPort(first)) {
      // listen(port[, host][, backlog][, callback])
      if (typeof args[1] !== 'string') {
        args = [first === null || first === undefined ? 0 : first, host, ...args.slice(1)];
      }
    } else if (typeof first === 'object' && !Array.isArray(first)) {
      // listen(options[, callback]); options with a path or handle are not TCP: keep them
      const isTcp = first.path === undefined && first.handle === undefined && first._handle === undefined
        && first.fd === undefined && !(first instanceof net.Server) && !(first instanceof net.Socket);
      if (isTcp && (first.host === undefined || first.host === null || first.host === '')) {
        args = [{ ...first, host }, ...args.slice(1)];
      }
    }
    return originalListen.apply(this, args);
  };
  Object.defineProperty(net.Server.prototype, '__clearerLoopback', { value: true });

  const childProcess = require('child_process');
  const originalSpawn = childProcess.spawn;
  childProcess.spawn = function clearerLoopbackSpawn(command, ...rest) {
    if (typeof command === 'string' && /(^|\/)tensorboard$/.test(command) && Array.isArray(rest[0])) {
      rest[0] = rest[0].map((a) => (typeof a === 'string' ? a.replace(/--bind_all\b/g, `--host=${host}`) : a));
    }
    return originalSpawn.call(this, command, ...rest);
  };
}
