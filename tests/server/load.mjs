// Several clients at once on a server with 4 slots and a queue of 8 (loopback, bounded in count
// and time). Checks: every completed reply equals the reply the same request gets alone (no
// text lost or mixed between clients), clients that disconnect mid-stream are cancelled and
// their slots serve the next request, a burst beyond the queue gets 503 with Retry-After, and
// /health answers quickly throughout.
//   node load.mjs BASE_URL CLIENTS
import assert from 'node:assert/strict';

const [base, clientsText] = process.argv.slice(2);
const clients = Number(clientsText);
const ROUNDS = 3;
const chatUrl = `${base}/v1/chat/completions`;
const QUESTIONS = ['Who was the father of', 'What does', 'Finish this verse:', 'Which book is this verse from?'];
const NAMES = ['Isaac', 'Jacob', 'David', 'Solomon', 'John 3:16', 'Genesis 1:1', 'Psalms 23:1', 'And God said,',
               'Jesus wept', 'Boaz', 'Obed', 'Jesse', 'Judah', 'Levi', 'Moses', 'Aaron'];
const request = (client, round) => ({
  messages: [{ role: 'user', content: `${QUESTIONS[round % QUESTIONS.length]} ${NAMES[(client * ROUNDS + round) % NAMES.length]} (${client}.${round})` }],
  temperature: 0, max_tokens: 24,
});

async function post(body) {
  const res = await fetch(chatUrl, { method: 'POST', body: JSON.stringify(body), headers: { 'Content-Type': 'application/json' } });
  return res;
}
async function whole(body) {
  const res = await post(body);
  assert.equal(res.status, 200, await res.clone().text());
  return (await res.json()).choices[0].message.content;
}
async function streamed(body, abortAfterChunks = Infinity) {
  const controller = new AbortController();
  const res = await fetch(chatUrl, { method: 'POST', body: JSON.stringify({ ...body, stream: true }),
                                     headers: { 'Content-Type': 'application/json' }, signal: controller.signal });
  if (res.status !== 200) return { status: res.status, retryAfter: res.headers.get('retry-after'), json: await res.json() };
  let text = '', chunks = 0, buffer = '', done = false, aborted = false;
  const decoder = new TextDecoder();
  try {
    for await (const bytes of res.body) {
      buffer += decoder.decode(bytes, { stream: true });
      let end;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const event = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        if (!event.startsWith('data: ')) continue;  // comments
        if (event === 'data: [DONE]') { done = true; continue; }
        const data = JSON.parse(event.slice(6));
        assert.ok(!data.error, JSON.stringify(data));
        text += data.choices[0]?.delta?.content ?? '';
        if (++chunks >= abortAfterChunks) {
          aborted = true;
          controller.abort();
          break;
        }
      }
      if (aborted) break;
    }
  } catch (e) {
    if (e.name !== 'AbortError') throw e;
  }
  if (aborted) return { status: 'aborted', text };
  assert.ok(done, 'the stream ends with [DONE]');
  return { status: 200, text };
}
const metric = async (name) => Number((await (await fetch(`${base}/metrics`)).text())
  .match(new RegExp(`^${name} (\\S+)$`, 'm'))[1]);

// Each request alone first: the reply every later run of it must give.
const expected = new Map();
for (let c = 0; c < clients; c++) {
  for (let r = 0; r < ROUNDS; r++) expected.set(`${c}.${r}`, await whole(request(c, r)));
}
const distinct = new Set(expected.values()).size;
console.log(`ok: ${expected.size} requests alone (${distinct} distinct replies)`);

// /health during all of it.
let watching = true, healthChecks = 0, slowest = 0;
const watcher = (async () => {
  while (watching) {
    const t = performance.now();
    const res = await fetch(`${base}/health`);
    assert.equal(res.status, 200);
    slowest = Math.max(slowest, performance.now() - t);
    healthChecks++;
    await new Promise((r) => setTimeout(r, 50));
  }
})();

// Clients at once: streamed, whole, and a stream dropped after its third chunk, then again whole.
const cancelledBefore = await metric('megrez_generations_cancelled_total');
const started = performance.now();
await Promise.all(Array.from({ length: clients }, async (_, c) => {
  for (let r = 0; r < ROUNDS; r++) {
    const key = `${c}.${r}`;
    const body = request(c, r);
    if ((c + r) % 3 === 0) {
      const s = await streamed(body);
      assert.equal(s.status, 200);
      assert.equal(s.text, expected.get(key), `streamed ${key}`);
    } else if ((c + r) % 3 === 1) {
      assert.equal(await whole(body), expected.get(key), `whole ${key}`);
    } else {
      const s = await streamed(body, 3);
      if (s.status === 'aborted') assert.ok(expected.get(key).startsWith(s.text), `prefix of ${key}`);
      assert.equal(await whole(body), expected.get(key), `after a dropped stream, ${key}`);
    }
  }
}));
const seconds = (performance.now() - started) / 1000;
// A dropped client is cancelled at once: its generation ends early, counted as cancelled.
for (let i = 0; i < 50 && await metric('megrez_slots_busy') > 0; i++) await new Promise((r) => setTimeout(r, 100));
const cancelled = (await metric('megrez_generations_cancelled_total')) - cancelledBefore;
assert.ok(cancelled >= 1, `dropped streams were cancelled (${cancelled})`);
console.log(`ok: ${clients} clients x ${ROUNDS} requests at once in ${seconds.toFixed(1)} s: every reply as alone; ` +
            `${cancelled} dropped streams cancelled`);

// A burst beyond 4 slots + 8 queued: some get 503 with Retry-After, the others complete correctly.
const burst = await Promise.all(Array.from({ length: 20 }, (_, i) =>
  streamed({ ...request(i % clients, 0), max_tokens: 24 })));
const rejected = burst.filter((b) => b.status === 503);
const served = burst.filter((b) => b.status === 200);
assert.ok(rejected.length >= 1, 'a burst past the queue is refused');
assert.ok(served.length >= 8 && served.length + rejected.length === 20, `served ${served.length}, refused ${rejected.length}`);
for (const r of rejected) {
  assert.equal(r.retryAfter, '1');
  assert.equal(r.json.error.code, 'queue_full');
}
burst.forEach((b, i) => { if (b.status === 200) assert.equal(b.text, expected.get(`${i % clients}.0`)); });
console.log(`ok: a burst of 20: ${served.length} served correctly, ${rejected.length} refused with 503 + Retry-After`);

watching = false;
await watcher;
assert.ok(healthChecks > 10, `health polled ${healthChecks} times`);
assert.ok(slowest < 2000, `/health answered within 2 s (slowest ${slowest.toFixed(0)} ms)`);
assert.equal(await metric('megrez_queue_length'), 0);
console.log(`ok: /health answered ${healthChecks} times during the load, slowest ${slowest.toFixed(0)} ms`);
