import YAML from 'yaml';
import type { Config } from '../config/index.ts';
import { LOOP_INTERVALS, type LoopInterval, loopMetricName } from './loop-metrics.ts';
import { humanSeconds, type LoopObjectives, loopObjectives, loopSloRules } from './loop-slos.ts';
import { degradationRules } from './rules.ts';

export interface RenderedFile {
  /** Relative to the output folder. */
  path: string;
  content: string;
  /** Files holding the gateway token are written owner-only. */
  secret?: boolean;
}

export const GATEWAY_PATH = '/events/alertmanager';
const RULE_GROUP = 'bertha-feedback-quality';
const SLO_RULE_GROUP = 'bertha-loop-slos';
const RECEIVER = 'bertha-gateway';
const GROUP_BY = ['alertname', 'model_version'];

function yaml(value: unknown): string {
  return YAML.stringify(value, { lineWidth: 0, aliasDuplicateObjects: false });
}

function ruleGroups(config: Config) {
  return [
    {
      name: RULE_GROUP,
      interval: config.monitor.prometheus.evaluationInterval,
      rules: degradationRules(config.monitor.rules),
    },
    {
      name: SLO_RULE_GROUP,
      interval: config.monitor.prometheus.evaluationInterval,
      rules: loopSloRules(loopObjectives(config.monitor.loopObjectives)),
    },
  ];
}

/** Prometheus rule file (https://prometheus.io/docs/prometheus/latest/configuration/alerting_rules/). */
export function renderPrometheusRules(config: Config): string {
  return yaml({ groups: ruleGroups(config) });
}

/** Prometheus server config: scrape Bertha, load the rules, send alerts to Alertmanager. */
export function renderPrometheusConfig(config: Config, berthaUrl: string): string {
  const target = new URL(berthaUrl);
  const { scrapeInterval, evaluationInterval, alertmanagerAddress } = config.monitor.prometheus;
  return yaml({
    global: { scrape_interval: scrapeInterval, evaluation_interval: evaluationInterval },
    rule_files: ['bertha-rules.yml'],
    alerting: { alertmanagers: [{ static_configs: [{ targets: [alertmanagerAddress] }] }] },
    scrape_configs: [
      {
        job_name: 'bertha',
        scheme: target.protocol.replace(':', ''),
        metrics_path: `${target.pathname.replace(/\/$/, '')}/metrics`,
        static_configs: [{ targets: [target.host], labels: { service: 'bertha' } }],
      },
    ],
  });
}

/** Alertmanager config whose only receiver is Bertha's event gateway, with its bearer token. */
export function renderAlertmanagerConfig(config: Config, berthaUrl: string, token: string): string {
  const { groupWait, groupInterval, repeatInterval } = config.monitor.alertmanager;
  return yaml({
    route: {
      receiver: RECEIVER,
      group_by: GROUP_BY,
      group_wait: groupWait,
      group_interval: groupInterval,
      repeat_interval: repeatInterval,
    },
    receivers: [
      {
        name: RECEIVER,
        webhook_configs: [
          {
            url: new URL(GATEWAY_PATH, berthaUrl).href,
            send_resolved: true,
            http_config: { authorization: { type: 'Bearer', credentials: token } },
          },
        ],
      },
    ],
  });
}

// biome-ignore lint/suspicious/noTemplateCurlyInString: `${datasource}` is Grafana's variable syntax, not JS.
const DATASOURCE = { type: 'prometheus', uid: '${datasource}' };

function panel(
  id: number,
  title: string,
  type: 'gauge' | 'timeseries' | 'bargauge',
  query: { expr: string; legend: string },
  gridPos: { x: number; y: number; w: number; h: number },
  defaults: Record<string, unknown> = { unit: 'short' },
) {
  return {
    id,
    title,
    type,
    gridPos,
    datasource: DATASOURCE,
    targets: [{ refId: 'A', expr: query.expr, legendFormat: query.legend, datasource: DATASOURCE }],
    fieldConfig: { defaults, overrides: [] },
  };
}

/** Grafana dashboard (schema 39) over the feedback and loop metrics; the data source is a dashboard variable. */
export function renderGrafanaDashboard(config: Config): string {
  const { window, threshold } = config.monitor.rules.downRatio;
  const ratioDefaults = {
    unit: 'percentunit',
    min: 0,
    max: 1,
    thresholds: {
      mode: 'absolute',
      steps: [
        { color: 'green', value: null },
        { color: 'red', value: threshold },
      ],
    },
  };
  const dashboard = {
    uid: 'bertha-feedback',
    title: 'Bertha: answer quality',
    tags: ['bertha', 'llmops'],
    schemaVersion: 39,
    version: 1,
    editable: true,
    time: { from: 'now-6h', to: 'now' },
    refresh: '30s',
    templating: {
      list: [{ name: 'datasource', type: 'datasource', query: 'prometheus', label: 'Prometheus', current: {} }],
    },
    annotations: { list: [] },
    panels: [
      panel(
        1,
        'Thumbs-down share (current votes)',
        'gauge',
        { expr: 'bertha_feedback_down_ratio', legend: '{{model_version}}' },
        { x: 0, y: 0, w: 8, h: 8 },
        ratioDefaults,
      ),
      panel(
        2,
        'Votes per minute',
        'timeseries',
        {
          expr: 'sum by (model_version, rating) (rate(bertha_feedback_total[5m])) * 60',
          legend: '{{model_version}} {{rating}}',
        },
        { x: 8, y: 0, w: 16, h: 8 },
      ),
      panel(
        3,
        `Thumbs-down share over ${window}`,
        'timeseries',
        {
          expr: `sum by (model_version) (increase(bertha_feedback_total{rating="down"}[${window}])) / sum by (model_version) (increase(bertha_feedback_total[${window}]))`,
          legend: '{{model_version}}',
        },
        { x: 0, y: 8, w: 12, h: 8 },
        ratioDefaults,
      ),
      panel(
        4,
        'Degradation alerts',
        'timeseries',
        {
          expr: 'sum by (alertname, model_version) (ALERTS{component="bertha", slo=""})',
          legend: '{{alertname}} {{model_version}}',
        },
        { x: 12, y: 8, w: 12, h: 8 },
      ),
      ...loopPanels(16, loopObjectives(config.monitor.loopObjectives)),
    ],
  };
  return `${JSON.stringify(dashboard, null, 2)}\n`;
}

/** Green below the hop's objective, red above it. */
function objectiveDefaults(objectives: LoopObjectives, interval: LoopInterval) {
  return {
    unit: 's',
    min: 0,
    thresholds: {
      mode: 'absolute',
      steps: [
        { color: 'green', value: null },
        { color: 'red', value: objectives[interval].seconds },
      ],
    },
  };
}

/**
 * The loop measuring itself, below the feedback panels from row `top`. A hop labelled with a
 * model version happens a few times per version, so each version's mean duration is shown
 * (the totals need no `rate()`, which misses a series' first observation); uploads are
 * frequent enough for percentiles over an hour. Then the counters and the SLO alerts.
 */
function loopPanels(top: number, objectives: LoopObjectives) {
  const title = (interval: LoopInterval) => {
    const name = objectives[interval].title;
    return `${name.charAt(0).toUpperCase()}${name.slice(1)} (objective ${humanSeconds(objectives[interval].seconds)})`;
  };
  const labelled = (Object.keys(LOOP_INTERVALS) as LoopInterval[]).filter(
    (interval) => LOOP_INTERVALS[interval].modelVersion,
  );
  const panels = labelled.map((interval, index) => {
    const metric = loopMetricName(interval);
    return panel(
      100 + index,
      `${title(interval)}, mean per model version`,
      'bargauge',
      {
        expr: `sum by (model_version) (${metric}_sum) / sum by (model_version) (${metric}_count)`,
        legend: '{{model_version}}',
      },
      { x: (index % 3) * 8, y: top + Math.floor(index / 3) * 8, w: 8, h: 8 },
      objectiveDefaults(objectives, interval),
    );
  });
  const below = top + Math.ceil(labelled.length / 3) * 8;
  const upload = loopMetricName('upload_to_searchable');
  return [
    ...panels,
    panel(
      110,
      `${title('upload_to_searchable')}, p95 over 1h`,
      'timeseries',
      {
        expr: `histogram_quantile(0.95, sum by (le) (rate(${upload}_bucket[1h])))`,
        legend: 'p95',
      },
      { x: 0, y: below, w: 12, h: 8 },
      objectiveDefaults(objectives, 'upload_to_searchable'),
    ),
    panel(
      111,
      'Loop SLO alerts',
      'timeseries',
      { expr: 'sum by (alertname) (ALERTS{slo!="", alertstate="firing"})', legend: '{{alertname}}' },
      { x: 12, y: below, w: 12, h: 8 },
    ),
    panel(
      112,
      'Triggers suppressed per hour',
      'timeseries',
      { expr: 'sum by (reason) (increase(bertha_loop_triggers_suppressed_total[1h]))', legend: '{{reason}}' },
      { x: 0, y: below + 8, w: 8, h: 8 },
    ),
    panel(
      113,
      'Gate refusals per day',
      'timeseries',
      { expr: 'sum by (reason) (increase(bertha_loop_gate_refusals_total[1d]))', legend: '{{reason}}' },
      { x: 8, y: below + 8, w: 8, h: 8 },
    ),
    panel(
      114,
      'Rollbacks per day',
      'timeseries',
      { expr: 'sum by (kind) (increase(bertha_loop_rollbacks_total[1d]))', legend: '{{kind}}' },
      { x: 16, y: below + 8, w: 8, h: 8 },
    ),
  ];
}

/** In-cluster address of Bertha's Service. */
function clusterUrl(config: Config): string {
  const { serviceLabel, namespace } = config.monitor.kubernetes;
  return `http://${serviceLabel}.${namespace}.svc:${config.server.port}`;
}

/** Prometheus-operator resources: the same rules, scrape target and receiver, for Kubernetes. */
export function kubernetesMonitoringResources(config: Config): Record<string, unknown>[] {
  const { namespace, serviceLabel, portName, tokenSecret } = config.monitor.kubernetes;
  const labels = { 'app.kubernetes.io/name': 'bertha', 'app.kubernetes.io/part-of': 'bertha' };
  const { groupWait, groupInterval, repeatInterval } = config.monitor.alertmanager;
  return [
    {
      apiVersion: 'monitoring.coreos.com/v1',
      kind: 'PrometheusRule',
      metadata: { name: 'bertha-feedback-quality', namespace, labels },
      spec: { groups: ruleGroups(config) },
    },
    {
      apiVersion: 'monitoring.coreos.com/v1',
      kind: 'ServiceMonitor',
      metadata: { name: 'bertha', namespace, labels },
      spec: {
        selector: { matchLabels: { 'app.kubernetes.io/name': serviceLabel } },
        endpoints: [{ port: portName, path: '/metrics', interval: config.monitor.prometheus.scrapeInterval }],
      },
    },
    {
      apiVersion: 'monitoring.coreos.com/v1alpha1',
      kind: 'AlertmanagerConfig',
      metadata: { name: 'bertha-gateway', namespace, labels },
      spec: {
        route: {
          receiver: RECEIVER,
          groupBy: GROUP_BY,
          groupWait,
          groupInterval,
          repeatInterval,
          matchers: [{ name: 'component', value: 'bertha', matchType: '=' }],
        },
        receivers: [
          {
            name: RECEIVER,
            webhookConfigs: [
              {
                url: `${clusterUrl(config)}${GATEWAY_PATH}`,
                sendResolved: true,
                httpConfig: { authorization: { type: 'Bearer', credentials: { name: tokenSecret, key: 'token' } } },
              },
            ],
          },
        ],
      },
    },
  ];
}

/** Every monitoring file `bertha monitor render` writes. */
export function renderMonitoring(config: Config, options: { berthaUrl: string; token: string }): RenderedFile[] {
  const resources = kubernetesMonitoringResources(config);
  return [
    { path: 'prometheus/bertha-rules.yml', content: renderPrometheusRules(config) },
    { path: 'prometheus/prometheus.yml', content: renderPrometheusConfig(config, options.berthaUrl) },
    {
      path: 'alertmanager/alertmanager.yml',
      content: renderAlertmanagerConfig(config, options.berthaUrl, options.token),
      secret: true,
    },
    { path: 'grafana/bertha-feedback.json', content: renderGrafanaDashboard(config) },
    { path: 'kubernetes/monitoring.yaml', content: resources.map((resource) => yaml(resource)).join('---\n') },
  ];
}
