// The official openai client against megrez-server: replies equal megrez-run's, usage
// counts, stop sequences, the model list, and a follow-up turn that reuses the cached prefix.
//   node openai_client.mjs BASE_URL ONE_TURN.txt TWO_TURNS.txt PROMPT_TOKENS Q1 Q2
import assert from 'node:assert/strict';
import fs from 'node:fs';
import OpenAI from 'openai';

const [base, oneFile, twoFile, promptTokensText, q1, q2] = process.argv.slice(2);
const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'not-needed', maxRetries: 0 });
// megrez-run --chat writes each reply and a newline.
const one = fs.readFileSync(oneFile, 'utf8');
const two = fs.readFileSync(twoFile, 'utf8');
assert.ok(one.endsWith('\n') && two.startsWith(one), 'megrez-run gave the same first reply both times');
const reply1 = one.slice(0, -1);
const reply2 = two.slice(one.length, -1);
const promptTokens = Number(promptTokensText);
const greedy = { temperature: 0, max_tokens: 48 };

async function streamed(params) {
  const stream = await client.chat.completions.create({ ...params, stream: true, stream_options: { include_usage: true } });
  let text = '', finish = null, usage = null, roles = 0;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    for (const choice of chunk.choices) {
      if (choice.delta?.role) { assert.equal(choice.delta.role, 'assistant'); roles++; }
      text += choice.delta?.content ?? '';
      if (choice.finish_reason) finish = choice.finish_reason;
    }
  }
  assert.equal(roles, 1, 'the role comes once, in the first chunk');
  return { text, finish, usage };
}

// Non-streamed: the text megrez-run gives, and usage.
const messages1 = [{ role: 'user', content: q1 }];
const r1 = await client.chat.completions.create({ model: 'megrez2-tiny', messages: messages1, ...greedy });
assert.equal(r1.object, 'chat.completion');
assert.equal(r1.choices.length, 1);
assert.equal(r1.choices[0].message.role, 'assistant');
assert.equal(r1.choices[0].message.content, reply1);
assert.equal(r1.usage.prompt_tokens, promptTokens, 'prompt tokens as megrez-run prefilled them');
assert.equal(r1.usage.total_tokens, r1.usage.prompt_tokens + r1.usage.completion_tokens);
assert.ok(['stop', 'length'].includes(r1.choices[0].finish_reason));
if (r1.choices[0].finish_reason === 'length') assert.equal(r1.usage.completion_tokens, greedy.max_tokens);
console.log(`ok: non-streamed reply equals megrez-run's: ${JSON.stringify(reply1)} (${r1.choices[0].finish_reason})`);

// Streamed: the same text, the same usage, the same finish reason.
const s1 = await streamed({ model: 'megrez2-tiny', messages: messages1, ...greedy });
assert.equal(s1.text, reply1);
assert.equal(s1.finish, r1.choices[0].finish_reason);
assert.equal(s1.usage.prompt_tokens, r1.usage.prompt_tokens);
assert.equal(s1.usage.completion_tokens, r1.usage.completion_tokens);
console.log('ok: streamed reply, finish reason and usage equal the non-streamed ones');

// A follow-up turn: megrez-run's second reply, with the first turn found in the cache.
const messages2 = [...messages1, { role: 'assistant', content: reply1 }, { role: 'user', content: q2 }];
const r2 = await client.chat.completions.create({ model: 'x', messages: messages2, ...greedy });
assert.equal(r2.choices[0].message.content, reply2);
const cached = r2.usage.prompt_tokens_details.cached_tokens;
// The slot holds the first prompt, the reply and its end of turn: all of it is reused where the
// reply's text tokenizes back to the generated tokens, and at least the first prompt always.
assert.ok(cached > r1.usage.prompt_tokens, `the follow-up reused the first turn (${cached} cached tokens)`);
console.log(`ok: follow-up reply equals megrez-run's second reply: ${JSON.stringify(reply2)}; ${cached} of ` +
            `${r2.usage.prompt_tokens} prompt tokens came from the cache`);

// max_tokens: exactly that many tokens, finish "length".
const short = await client.chat.completions.create({ model: 'x', messages: messages1, temperature: 0, max_tokens: 2 });
assert.equal(short.choices[0].finish_reason, 'length');
assert.equal(short.usage.completion_tokens, 2);
assert.ok(reply1.startsWith(short.choices[0].message.content));
console.log('ok: max_tokens 2 gives 2 tokens and finish_reason length');

// Stop: the text ends before the stop sequence (not included), finish "stop".
const cut = reply1.length > 3 ? reply1.slice(2, 4) : null;
if (cut) {
  for (const stop of [cut, [cut, 'zzzz']]) {
    const r = await client.chat.completions.create({ model: 'x', messages: messages1, ...greedy, stop });
    assert.equal(r.choices[0].message.content, reply1.slice(0, reply1.indexOf(cut)));
    assert.equal(r.choices[0].finish_reason, 'stop');
    const s = await streamed({ model: 'x', messages: messages1, ...greedy, stop });
    assert.equal(s.text, reply1.slice(0, reply1.indexOf(cut)));
  }
  console.log(`ok: stop ${JSON.stringify(cut)} (string and list, streamed and not)`);
}

// Raw completions.
const c = await client.completions.create({ model: 'x', prompt: 'In the beginning', max_tokens: 8, temperature: 0 });
assert.equal(c.object, 'text_completion');
assert.equal(c.usage.completion_tokens, 8);
assert.ok(c.choices[0].text.length > 0);
console.log(`ok: /v1/completions: ${JSON.stringify(c.choices[0].text)}`);

// Seeded sampling is reproducible; the model list names the model.
const sampled = { model: 'x', messages: messages1, temperature: 0.9, top_p: 0.95, max_tokens: 16, seed: 42 };
const a = await client.chat.completions.create(sampled);
const b = await client.chat.completions.create(sampled);
assert.equal(a.choices[0].message.content, b.choices[0].message.content, 'the same seed gives the same text');
const models = await client.models.list();
assert.deepEqual(models.data.map((m) => m.id), ['megrez2-tiny']);
console.log('ok: seeded sampling repeats; /v1/models lists megrez2-tiny');
