// The Saveris docs' sample client stack — @stomp/stompjs on Node.js with `ws` as the global
// WebSocket — draining a preloaded queue: parse each JSON body, ACK each message
// (client-individual, as a client that must not lose alarms would), stop after COUNT.
//
//   node drain.mjs WS_URL DESTINATION COUNT [--no-deflate]
//
// By default `ws` offers permessage-deflate (as the docs' example runs); `--no-deflate`
// turns it off. Prints one JSON line: {"messages", "secs", "bytes", "deflate"}.
import { Client } from '@stomp/stompjs';
import { WebSocket } from 'ws';

Object.assign(global, { WebSocket });

const [url, destination, countArg, ...flags] = process.argv.slice(2);
const count = Number(countArg);
if (!url || !destination || !(count > 0)) {
  console.error('usage: node drain.mjs WS_URL DESTINATION COUNT [--no-deflate]');
  process.exit(2);
}
const deflate = !flags.includes('--no-deflate');

let received = 0;
let bytes = 0;
let parseErrors = 0;
const start = process.hrtime.bigint();

const client = new Client({
  brokerURL: url,
  connectHeaders: { login: 'guest', passcode: 'guest', host: '/' },
  reconnectDelay: 0,
  debug: () => {},
});
if (!deflate) {
  client.webSocketFactory = () => new WebSocket(url, ['v12.stomp'], { perMessageDeflate: false });
}

client.onConnect = () => {
  client.subscribe(
    destination,
    (message) => {
      try {
        JSON.parse(message.body);
      } catch {
        parseErrors += 1;
      }
      bytes += message.body.length;
      message.ack();
      received += 1;
      if (received === count) {
        const secs = Number(process.hrtime.bigint() - start) / 1e9;
        // Deactivate after the last ACK went out (it is written before the promise runs).
        setImmediate(async () => {
          await client.deactivate();
          console.log(JSON.stringify({ messages: received, secs, bytes, deflate, parse_errors: parseErrors }));
          process.exit(0);
        });
      }
    },
    { ack: 'client-individual' },
  );
};
client.onStompError = (frame) => {
  console.error('STOMP error:', frame.headers.message);
  process.exit(1);
};
client.onWebSocketError = () => {
  console.error('WebSocket error');
  process.exit(1);
};
client.activate();
