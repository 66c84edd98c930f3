import { spawnSync } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { PrometheusRule, ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import { AlertmanagerConfig } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1alpha1';
import { describe, expect, test } from 'vitest';
import YAML from 'yaml';
import {
  LOOP_INTERVALS,
  LOOP_OBJECTIVES,
  type LoopInterval,
  loopMetricName,
  loopSloAlertName,
} from '../../src/monitor/index.ts';
import { binariesAvailable } from '../helpers/binaries.ts';
import { tempDir } from '../helpers/temp.ts';

const BIN = path.resolve('bin/bertha.js');

function render(args: string[]): { out: string; dataDir: string; files: string[] } {
  const dir = tempDir();
  const out = path.join(dir, 'out');
  const dataDir = path.join(dir, 'data');
  const result = spawnSync(process.execPath, [BIN, 'monitor', 'render', '-d', dataDir, '-o', out, ...args], {
    encoding: 'utf8',
  });
  expect(result.stderr).toBe('');
  expect(result.status).toBe(0);
  return { out, dataDir, files: result.stdout.trim().split('\n') };
}

function check(command: string, args: string[]): string {
  const result = spawnSync(command, args, { encoding: 'utf8' });
  expect(result.status, `${command} ${args.join(' ')}:\n${result.stdout}${result.stderr}`).toBe(0);
  return result.stdout + result.stderr;
}

const tools = binariesAvailable('promtool', 'amtool');

describe.skipIf(!tools)('bertha monitor render', () => {
  test('writes rules and configs that promtool and amtool accept, with the settings from bertha.yaml', () => {
    const { out, dataDir, files } = render([
      '--set',
      'monitor.berthaUrl=http://127.0.0.1:18080',
      '--set',
      'monitor.rules.downOverUp.for=2m',
      '--set',
      'monitor.rules.downRatio.window=30m',
      '--set',
      'monitor.rules.downRatio.minVotes=50',
      '--set',
      'monitor.alertmanager.groupWait=1s',
    ]);
    expect(files.map((file) => path.relative(out, file)).sort()).toEqual([
      'alertmanager/alertmanager.yml',
      'grafana/bertha-feedback.json',
      'kubernetes/monitoring.yaml',
      'prometheus/bertha-rules.yml',
      'prometheus/prometheus.yml',
    ]);
    expect(check('promtool', ['check', 'rules', path.join(out, 'prometheus/bertha-rules.yml')])).toContain(
      `SUCCESS: ${2 + Object.keys(LOOP_INTERVALS).length} rules found`,
    );
    expect(check('promtool', ['check', 'config', path.join(out, 'prometheus/prometheus.yml')])).toContain(
      'SUCCESS: 1 rule files found',
    );
    check('amtool', ['check-config', path.join(out, 'alertmanager/alertmanager.yml')]);

    const rules = YAML.parse(readFileSync(path.join(out, 'prometheus/bertha-rules.yml'), 'utf8'));
    const [downOverUp, ratio] = rules.groups[0].rules;
    expect(rules.groups[1].rules.map((rule: { alert: string }) => rule.alert)).toEqual(
      (Object.keys(LOOP_INTERVALS) as LoopInterval[]).map(loopSloAlertName),
    );
    expect(downOverUp).toMatchObject({ alert: 'BerthaThumbsDownOverUp', for: '2m' });
    expect(downOverUp.expr).toContain('bertha_feedback_total{rating="down"}) > sum by (model_version)');
    expect(ratio.expr).toContain('[30m]');
    expect(ratio.expr).toContain('>= 50');

    const alertmanager = YAML.parse(readFileSync(path.join(out, 'alertmanager/alertmanager.yml'), 'utf8'));
    const webhook = alertmanager.receivers[0].webhook_configs[0];
    const token = readFileSync(path.join(dataDir, 'gateway-token'), 'utf8').trim();
    expect(webhook).toMatchObject({
      url: 'http://127.0.0.1:18080/events/alertmanager',
      send_resolved: true,
      http_config: { authorization: { type: 'Bearer', credentials: token } },
    });
    expect(alertmanager.route.group_wait).toBe('1s');
    expect(statSync(path.join(out, 'alertmanager/alertmanager.yml')).mode & 0o077).toBe(0);

    const prometheus = YAML.parse(readFileSync(path.join(out, 'prometheus/prometheus.yml'), 'utf8'));
    expect(prometheus.scrape_configs[0].static_configs[0].targets).toEqual(['127.0.0.1:18080']);

    const dashboard = JSON.parse(readFileSync(path.join(out, 'grafana/bertha-feedback.json'), 'utf8'));
    const queries = dashboard.panels.map((panel: { targets: { expr: string }[] }) => panel.targets[0]?.expr).join(' ');
    expect(queries).toContain('bertha_feedback_down_ratio');
    for (const interval of Object.keys(LOOP_INTERVALS) as LoopInterval[])
      expect(queries).toContain(loopMetricName(interval));
    for (const counter of ['triggers_suppressed', 'gate_refusals', 'rollbacks']) {
      expect(queries).toContain(`bertha_loop_${counter}_total`);
    }
    const ids = dashboard.panels.map((panel: { id: number }) => panel.id);
    expect(new Set(ids).size).toBe(ids.length);
  });

  test('a loop SLO alert fires for a hop slower than its objective, a first observation included, and resolves a window later', () => {
    const { out } = render([]);
    const rulesFile = path.join(out, 'prometheus/bertha-rules.yml');
    const rules = YAML.parse(readFileSync(rulesFile, 'utf8')).groups[1].rules as Array<{
      alert: string;
      labels: Record<string, string>;
      annotations: Record<string, string>;
    }>;
    const firing = (interval: LoopInterval, value: number) => {
      const rule = rules.find((candidate) => candidate.alert === loopSloAlertName(interval));
      if (!rule) throw new Error(`no rule for ${interval}`);
      return {
        exp_labels: rule.labels,
        exp_annotations: Object.fromEntries(
          Object.entries(rule.annotations).map(([key, text]) => [key, text.replace('{{ $value }}', String(value))]),
        ),
      };
    };
    const upload = loopMetricName('upload_to_searchable');
    const verdict = loopMetricName('candidate_to_verdict');
    const uploadObjective = LOOP_OBJECTIVES.upload_to_searchable.seconds;
    const verdictObjective = LOOP_OBJECTIVES.candidate_to_verdict.seconds;
    // Two processes export uploads: a fast one at 2m on one, a slow one at 5m on the other. A new
    // model version's series appears at 3m already holding one slow verdict (no earlier sample).
    const unitTest = {
      rule_files: [rulesFile],
      evaluation_interval: '1m',
      tests: [
        {
          interval: '1m',
          input_series: [
            { series: `${upload}_count{instance="a"}`, values: '0 0 1x90' },
            { series: `${upload}_bucket{instance="a",le="${uploadObjective}"}`, values: '0 0 1x90' },
            { series: `${upload}_count{instance="b"}`, values: '0 0 0 0 0 1x90' },
            { series: `${upload}_bucket{instance="b",le="${uploadObjective}"}`, values: '0x95' },
            { series: `${verdict}_count{model_version="bertha-chat/2"}`, values: '_ _ _ 1x90' },
            {
              series: `${verdict}_bucket{model_version="bertha-chat/2",le="${verdictObjective}"}`,
              values: '_ _ _ 0x90',
            },
          ],
          alert_rule_test: [
            { eval_time: '3m', alertname: loopSloAlertName('upload_to_searchable'), exp_alerts: [] },
            {
              eval_time: '6m',
              alertname: loopSloAlertName('upload_to_searchable'),
              exp_alerts: [firing('upload_to_searchable', 1)],
            },
            { eval_time: '70m', alertname: loopSloAlertName('upload_to_searchable'), exp_alerts: [] },
            { eval_time: '2m', alertname: loopSloAlertName('candidate_to_verdict'), exp_alerts: [] },
            {
              eval_time: '4m',
              alertname: loopSloAlertName('candidate_to_verdict'),
              exp_alerts: [firing('candidate_to_verdict', 1)],
            },
            { eval_time: '70m', alertname: loopSloAlertName('candidate_to_verdict'), exp_alerts: [] },
            { eval_time: '6m', alertname: loopSloAlertName('feedback_to_alert'), exp_alerts: [] },
          ],
        },
      ],
    };
    const testFile = path.join(out, 'loop-slos.test.yml');
    writeFileSync(testFile, YAML.stringify(unitTest));
    expect(check('promtool', ['test', 'rules', testFile])).toContain('SUCCESS');
  });

  test('the Kubernetes forms are valid Prometheus-operator resources carrying the same rules', () => {
    const { out } = render(['--set', 'monitor.kubernetes.namespace=llmops']);
    const docs = YAML.parseAllDocuments(readFileSync(path.join(out, 'kubernetes/monitoring.yaml'), 'utf8')).map((doc) =>
      doc.toJS(),
    );
    expect(docs.map((doc) => doc.kind)).toEqual(['PrometheusRule', 'ServiceMonitor', 'AlertmanagerConfig']);
    const [rule, monitor, alertmanagerConfig] = docs;
    new PrometheusRule(rule).validate();
    new ServiceMonitor(monitor).validate();
    new AlertmanagerConfig(alertmanagerConfig).validate();
    for (const doc of docs) expect(doc.metadata.namespace).toBe('llmops');

    const plain = YAML.parse(readFileSync(path.join(out, 'prometheus/bertha-rules.yml'), 'utf8'));
    expect(rule.spec.groups).toEqual(plain.groups);
    const webhook = alertmanagerConfig.spec.receivers[0].webhookConfigs[0];
    expect(webhook.url).toBe('http://bertha.llmops.svc:8080/events/alertmanager');
    expect(webhook.httpConfig.authorization.credentials).toEqual({ name: 'bertha-gateway', key: 'token' });
    // The operator's config must not carry the token itself, only the Secret reference.
    expect(JSON.stringify(docs)).not.toContain(
      readFileSync(path.join(out, '..', 'data', 'gateway-token'), 'utf8').trim(),
    );
  });
});

test('loop objectives come from monitor.loopObjectives; one that is not a histogram bound is refused', () => {
  const { out } = render(['--set', 'monitor.loopObjectives.dataset_to_candidate=1d']);
  const rules = YAML.parse(readFileSync(path.join(out, 'prometheus/bertha-rules.yml'), 'utf8')).groups[1]
    .rules as Array<{
    alert: string;
    expr: string;
    annotations: Record<string, string>;
  }>;
  const candidate = rules.find((rule) => rule.alert === loopSloAlertName('dataset_to_candidate'));
  expect(candidate?.expr).toContain('le="86400"');
  expect(candidate?.annotations.summary).toBe('Bertha loop: dataset to candidate took longer than 1 d');
  const upload = rules.find((rule) => rule.alert === loopSloAlertName('upload_to_searchable'));
  expect(upload?.expr).toContain(`le="${LOOP_OBJECTIVES.upload_to_searchable.seconds}"`);

  const dir = tempDir();
  const refused = spawnSync(
    process.execPath,
    [
      BIN,
      'monitor',
      'render',
      '-d',
      path.join(dir, 'data'),
      '-o',
      path.join(dir, 'out'),
      '--set',
      'monitor.loopObjectives.dataset_to_candidate=3h',
    ],
    { encoding: 'utf8' },
  );
  expect(refused.status).not.toBe(0);
  expect(refused.stderr).toMatch(
    /monitor\.loopObjectives\.dataset_to_candidate: 3h is not a bound of the loop histograms; use one of .*4 h/,
  );
});
