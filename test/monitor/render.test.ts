import { spawnSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { PrometheusRule, ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import { AlertmanagerConfig } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1alpha1';
import { describe, expect, test } from 'vitest';
import YAML from 'yaml';
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
      'SUCCESS: 2 rules found',
    );
    expect(check('promtool', ['check', 'config', path.join(out, 'prometheus/prometheus.yml')])).toContain(
      'SUCCESS: 1 rule files found',
    );
    check('amtool', ['check-config', path.join(out, 'alertmanager/alertmanager.yml')]);

    const rules = YAML.parse(readFileSync(path.join(out, 'prometheus/bertha-rules.yml'), 'utf8'));
    const [downOverUp, ratio] = rules.groups[0].rules;
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
    expect(
      dashboard.panels.map((panel: { targets: { expr: string }[] }) => panel.targets[0]?.expr).join(' '),
    ).toContain('bertha_feedback_down_ratio');
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
