import { describe, expect, test } from 'vitest';
import { checkFaithfulness, splitStatements, statementTokens } from '../../src/eval/faithfulness.ts';

describe('statement split', () => {
  test('splits sentences, list items and independent clauses, and drops citation marks', () => {
    expect(
      splitStatements(
        'The gateway receives alerts [1]. It forwards them to the bus; the bus stores every event.\n' +
          '- Canary rollouts serve a share of traffic, and the controller watches thumbs-down votes.\n' +
          '2. Paris and London are capitals.',
      ),
    ).toEqual([
      'The gateway receives alerts',
      'It forwards them to the bus',
      'the bus stores every event',
      'Canary rollouts serve a share of traffic',
      'the controller watches thumbs-down votes',
      'Paris and London are capitals',
    ]);
  });

  test('keeps a clause with too few content words with its sentence, and decimals and abbreviations whole', () => {
    expect(splitStatements('The loss fell to 3.5 after training, but not much.')).toEqual([
      'The loss fell to 3.5 after training, but not much',
    ]);
    expect(splitStatements('Use a small model, e.g. the starter one.')).toEqual([
      'Use a small model, e.g. the starter one',
    ]);
    expect(splitStatements('')).toEqual([]);
  });
});

describe('content tokens', () => {
  test('drop stopwords, fold plurals and possessives, read numbers, and keep negation as polarity', () => {
    const tokens = statementTokens("The model's answers cost 1,000 dollars in two batches, not 3.50");
    expect([...tokens.words].sort()).toEqual(['answer', 'batch', 'cost', 'dollar', 'model']);
    expect([...tokens.numbers].sort()).toEqual(['1000', '2', '3.5']);
    expect(tokens.negated).toBe(true);
    expect(statementTokens("It isn't cheap").negated).toBe(true);
    expect(statementTokens('Queries repeat').words).toEqual(new Set(['query', 'repeat']));
  });
});

describe('lexical faithfulness', () => {
  const contexts = [
    'Bertha retrains the model when feedback degrades. The canary serves 10 percent of conversations first.',
    'The registry keeps every model version. Old versions are never deleted.',
  ];

  test('a statement is supported by a context sentence holding enough of its content words', () => {
    const result = checkFaithfulness(
      'Bertha retrains the model when feedback degrades. The registry keeps every version of a model.',
      contexts,
    );
    expect(result.total).toBe(2);
    expect(result.supported).toBe(2);
    expect(result.score).toBe(1);
  });

  test('a made-up statement, a wrong number or a flipped negation is unsupported', () => {
    const result = checkFaithfulness(
      'The canary serves 50 percent of conversations first. Old versions are deleted. Bertha is written in Rust.',
      contexts,
    );
    expect(result.statements.map((s) => s.supported)).toEqual([false, false, false]);
    expect(result.score).toBe(0);
    expect(checkFaithfulness('The canary serves eleven percent of conversations.', contexts).score).toBe(0);
    // A number word is the number.
    expect(checkFaithfulness('The canary serves ten percent of conversations.', contexts).score).toBe(1);
    expect(checkFaithfulness('Old versions are not deleted.', contexts).score).toBe(1);
  });

  test('support may span two adjacent sentences of one passage', () => {
    const result = checkFaithfulness('The registry keeps old versions that are never deleted.', contexts);
    expect(result.score).toBe(1);
  });

  test('the threshold is the share of content words that must be found', () => {
    // Content words: bertha, retrain, model, nightly: 3 of 4 found.
    const answer = 'Bertha retrains the model nightly.';
    expect(checkFaithfulness(answer, contexts).statements[0]?.support).toBe(0.75);
    expect(checkFaithfulness(answer, contexts, 0.75).score).toBe(1);
    expect(checkFaithfulness(answer, contexts, 0.8).score).toBe(0);
  });

  test('an empty or content-free answer has nothing supported and scores 0', () => {
    expect(checkFaithfulness('', contexts)).toEqual({ statements: [], supported: 0, total: 0, score: 0 });
    expect(checkFaithfulness('Sure! Yes.', contexts).score).toBe(0);
    expect(checkFaithfulness('Bertha retrains the model.', []).score).toBe(0);
  });
});
