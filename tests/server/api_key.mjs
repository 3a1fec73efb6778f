// --api-key (or $MEGREZ_API_KEY): every route but /health needs "Authorization: Bearer KEY".
//   node api_key.mjs BASE_URL KEY
import assert from 'node:assert/strict';
import OpenAI from 'openai';

const [base, key] = process.argv.slice(2);
const body = JSON.stringify({ messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 });
for (const [what, headers] of [['no key', {}], ['a wrong key', { Authorization: 'Bearer nope' }],
                               ['the key without Bearer', { Authorization: key }],
                               ['a longer key', { Authorization: `Bearer ${key}x` }]]) {
  for (const [method, path] of [['POST', '/v1/chat/completions'], ['GET', '/v1/models'], ['GET', '/metrics']]) {
    const r = await fetch(`${base}${path}`, { method, headers, body: method === 'POST' ? body : undefined });
    assert.equal(r.status, 401, `${what} on ${path}`);
    assert.equal((await r.json()).error.code, 'invalid_api_key');
  }
}
assert.equal((await fetch(`${base}/health`)).status, 200, '/health needs no key');
const ok = await new OpenAI({ baseURL: `${base}/v1`, apiKey: key, maxRetries: 0 }).chat.completions.create(
  { model: 'x', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2, temperature: 0 });
assert.equal(ok.choices.length, 1);
let refused = null;
try {
  await new OpenAI({ baseURL: `${base}/v1`, apiKey: 'wrong', maxRetries: 0 }).models.list();
} catch (e) {
  refused = e;
}
assert.equal(refused?.status, 401);
console.log('ok: API key: 401 without it or with a wrong one (chat, models, metrics); the key works; /health is open');
