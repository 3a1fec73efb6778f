// Serving benchmark for megrez-server: starts the server with 1, 2 and 4 slots and, for each,
// lets CLIENTS concurrent clients send REQUESTS chat requests each (streamed, greedy, distinct
// prompts); then times the first token of a follow-up turn with the conversation in the slot's
// cache and without it (the slot's cache replaced by another conversation in between).
// Node's built-in fetch only, no packages. Prints a Markdown table; ratios are against 1 slot.
//
//   node apps/megrez-server/bench.mjs build/bin/megrez-server [--model DIR] [--clients 8]
//        [--requests 4] [--max-tokens 32] [extra megrez-server flags after --]
import { spawn } from 'node:child_process';

const args = process.argv.slice(2);
const binary = args.shift();
if (!binary) {
  console.error('usage: node bench.mjs MEGREZ_SERVER_BINARY [--model DIR] [--clients N] [--requests N] [--max-tokens N] [-- flags]');
  process.exit(2);
}
const option = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : fallback;
};
const model = option('--model', null);
const clients = Number(option('--clients', 8));
const requests = Number(option('--requests', 4));
const maxTokens = Number(option('--max-tokens', 32));
const extra = args.includes('--') ? args.slice(args.indexOf('--') + 1) : [];

async function startServer(parallel) {
  const flags = ['--port', '0', '--parallel', String(parallel), '--queue', '64', ...extra];
  if (model) flags.push('--model', model);
  const child = spawn(binary, flags, { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  const port = await new Promise((resolve, reject) => {
    child.stderr.on('data', (d) => {
      log += d;
      const m = log.match(/listening on http:\/\/[\d.]+:(\d+)/);
      if (m) resolve(Number(m[1]));
    });
    child.on('exit', (code) => reject(new Error(`megrez-server exited (${code}): ${log}`)));
  });
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    if ((await fetch(`${base}/health`)).status === 200) break;
    if (i > 600) throw new Error('the server did not get ready');
    await new Promise((r) => setTimeout(r, 100));
  }
  return { base, stop: () => new Promise((r) => { child.on('exit', r); child.kill('SIGTERM'); }) };
}

// One streamed chat request: seconds to the first text, completion tokens, total seconds.
async function chat(base, messages, max_tokens) {
  const t0 = performance.now();
  const res = await fetch(`${base}/v1/chat/completions`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ messages, temperature: 0, max_tokens, stream: true, stream_options: { include_usage: true } }),
  });
  if (res.status !== 200) throw new Error(`status ${res.status}: ${await res.text()}`);
  let buffer = '', first = null, usage = null, text = '';
  const decoder = new TextDecoder();
  for await (const bytes of res.body) {
    buffer += decoder.decode(bytes, { stream: true });
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      if (!event.startsWith('data: ') || event === 'data: [DONE]') continue;
      const data = JSON.parse(event.slice(6));
      if (data.usage) usage = data.usage;
      const piece = data.choices?.[0]?.delta?.content;
      if (piece) {
        if (first === null) first = (performance.now() - t0) / 1000;
        text += piece;
      }
    }
  }
  return { ttft: first ?? (performance.now() - t0) / 1000, tokens: usage.completion_tokens, text,
           seconds: (performance.now() - t0) / 1000, usage };
}

const TOPICS = ['Isaac', 'Jacob', 'David', 'Solomon', 'John 3:16', 'Genesis 1:1', 'Psalms 23:1', 'Boaz', 'Obed',
                'Jesse', 'Judah', 'Levi', 'Moses', 'Aaron', 'Ruth', 'Joseph'];
const question = (c, r) => [{ role: 'user', content: `Who was the father of ${TOPICS[(c * requests + r) % TOPICS.length]}? (${c}.${r})` }];

async function throughput(base) {
  await chat(base, question(0, 0), 4);  // warm-up
  const t0 = performance.now();
  const all = await Promise.all(Array.from({ length: clients }, async (_, c) => {
    const out = [];
    for (let r = 0; r < requests; r++) out.push(await chat(base, question(c, r), maxTokens));
    return out;
  }));
  const seconds = (performance.now() - t0) / 1000;
  const flat = all.flat();
  const tokens = flat.reduce((s, x) => s + x.tokens, 0);
  const ttfts = flat.map((x) => x.ttft).sort((a, b) => a - b);
  return { rps: flat.length / seconds, tps: tokens / seconds, ttft: ttfts[Math.floor(ttfts.length / 2)], seconds };
}

// The follow-up turn's time to first token, median of 5, with the conversation cached or not.
const SYSTEM = 'You answer questions about the Bible. ' +
  'In the beginning God created the heaven and the earth. And the earth was without form, and void; and darkness ' +
  'was upon the face of the deep. And the Spirit of God moved upon the face of the waters. And God said, Let there ' +
  'be light: and there was light. And God saw the light, that it was good: and God divided the light from the darkness.';
async function followUp(base, cached) {
  const times = [];
  for (let i = 0; i < 5; i++) {
    const first = [{ role: 'system', content: SYSTEM }, { role: 'user', content: `Who was the father of David? (${i})` }];
    const a = await chat(base, first, 16);
    if (!cached) await chat(base, [{ role: 'user', content: `Something else entirely ${i}` }], 4);
    const second = [...first, { role: 'assistant', content: a.text }, { role: 'user', content: 'And who was his father?' }];
    const b = await chat(base, second, 4);
    times.push({ ttft: b.ttft, cachedTokens: b.usage.prompt_tokens_details.cached_tokens, prompt: b.usage.prompt_tokens });
  }
  times.sort((x, y) => x.ttft - y.ttft);
  return times[2];
}

const rows = [];
for (const parallel of [1, 2, 4]) {
  const server = await startServer(parallel);
  try {
    rows.push({ parallel, ...(await throughput(server.base)) });
    if (parallel === 1) {
      var reuse = await followUp(server.base, true);  // eslint-disable-line no-var
      var noReuse = await followUp(server.base, false);  // eslint-disable-line no-var
    }
  } finally {
    await server.stop();
  }
}
const base = rows[0];
console.log(`megrez-server: ${clients} clients x ${requests} streamed chat requests, greedy, max_tokens ${maxTokens}\n`);
console.log('| slots | requests/s | tokens/s | vs 1 slot | median time to first token |');
console.log('|---|---|---|---|---|');
for (const r of rows) {
  console.log(`| ${r.parallel} | ${r.rps.toFixed(2)} | ${r.tps.toFixed(1)} | ${(r.tps / base.tps).toFixed(2)}x | ${(r.ttft * 1000).toFixed(0)} ms |`);
}
console.log('\n| follow-up turn (1 slot) | prompt tokens | from the cache | time to first token |');
console.log('|---|---|---|---|');
console.log(`| conversation in the slot's cache | ${reuse.prompt} | ${reuse.cachedTokens} | ${(reuse.ttft * 1000).toFixed(0)} ms |`);
console.log(`| cache holds another conversation | ${noReuse.prompt} | ${noReuse.cachedTokens} | ${(noReuse.ttft * 1000).toFixed(0)} ms |`);
console.log(`\nprefix reuse: first token ${(noReuse.ttft / reuse.ttft).toFixed(2)}x sooner`);
