// A stand-in VM process for process.test.ts: `node fake-vm.js MODE [QMP_PATH]`, its stdout
// and stderr being the VM log.
//   fail      print a QEMU-like error and exit 1 before any QMP socket exists
//   silent    never open QMP
//   obey      QMP; `quit` ends it (code 0)
//   deaf      QMP; answers `quit` but stays; SIGTERM ends it
//   stubborn  QMP; answers `quit` but stays, and ignores SIGTERM: only SIGKILL ends it
import { createServer } from 'node:net';

const [mode, qmpPath] = process.argv.slice(2);
const GREETING = { QMP: { version: { qemu: { micro: 0, minor: 2, major: 10 }, package: 'fake-vm' }, capabilities: [] } };

console.log(`fake-vm: pid ${process.pid}, ${mode}`);
if (mode === 'fail') {
  console.error('fake-vm: -netdev tap,id=n0,ifname=nosuch0: could not configure /dev/net/tun (nosuch0): Operation not permitted');
  process.exit(1);
}
// Bounded, whatever the test does: a stray fake VM ends on its own.
setTimeout(() => process.exit(3), 60_000);
if (mode === 'stubborn') process.on('SIGTERM', () => console.log('fake-vm: SIGTERM ignored'));
if (mode !== 'silent') {
  createServer((sock) => {
    sock.on('error', () => undefined);
    sock.write(JSON.stringify(GREETING) + '\n');
    let buf = '';
    sock.setEncoding('utf8').on('data', (d: string) => {
      buf += d;
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        const req = JSON.parse(buf.slice(0, i)) as { execute: string; id?: unknown };
        buf = buf.slice(i + 1);
        sock.write(JSON.stringify({ return: {}, id: req.id }) + '\n');
        if (req.execute !== 'quit') continue;
        console.log('fake-vm: quit');
        if (mode === 'obey') setImmediate(() => process.exit(0));
      }
    });
  }).listen(qmpPath);
}
