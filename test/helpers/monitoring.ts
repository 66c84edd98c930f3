import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Bertha } from '../../src/app.ts';
import { gatewayToken, renderMonitoring } from '../../src/monitor/index.ts';
import { freePort, startService, waitFor } from './processes.ts';
import { tempDir } from './temp.ts';

export interface MonitoringPorts {
  prometheus: number;
  alertmanager: number;
}

export async function monitoringPorts(): Promise<MonitoringPorts> {
  return { prometheus: await freePort(), alertmanager: await freePort() };
}

/** Bertha settings for `monitor.mode=prometheus` with second-scale intervals, so an alert fires within seconds. */
export function fastPrometheusSettings(ports: MonitoringPorts): string[] {
  return [
    'monitor.mode=prometheus',
    'monitor.rules.downOverUp.for=1s',
    'monitor.prometheus.scrapeInterval=1s',
    'monitor.prometheus.evaluationInterval=1s',
    `monitor.prometheus.alertmanagerAddress=127.0.0.1:${ports.alertmanager}`,
    'monitor.alertmanager.groupWait=1s',
    'monitor.alertmanager.groupInterval=1s',
  ];
}

/**
 * Real Prometheus and Alertmanager processes on the configuration `bertha monitor render`
 * writes for this Bertha, ready to scrape it and call its gateway. Stopped with the test.
 */
export async function startMonitoringStack(bertha: Bertha, ports: MonitoringPorts): Promise<{ logs(): string }> {
  const dir = tempDir();
  const token = gatewayToken({ configured: '', dataDir: bertha.config.dataDir });
  for (const file of renderMonitoring(bertha.config, { berthaUrl: bertha.url as string, token })) {
    mkdirSync(path.dirname(path.join(dir, file.path)), { recursive: true });
    writeFileSync(path.join(dir, file.path), file.content);
  }
  const alertmanager = startService('prometheus-alertmanager', [
    `--config.file=${path.join(dir, 'alertmanager/alertmanager.yml')}`,
    `--storage.path=${path.join(dir, 'alertmanager-data')}`,
    `--web.listen-address=127.0.0.1:${ports.alertmanager}`,
    '--cluster.listen-address=',
  ]);
  const prometheus = startService('prometheus', [
    `--config.file=${path.join(dir, 'prometheus/prometheus.yml')}`,
    `--storage.tsdb.path=${path.join(dir, 'prometheus-data')}`,
    `--web.listen-address=127.0.0.1:${ports.prometheus}`,
  ]);
  const logs = () => [alertmanager, prometheus].map((service) => service.output()).join('\n');
  for (const [name, port] of [
    ['alertmanager', ports.alertmanager],
    ['prometheus', ports.prometheus],
  ] as const) {
    await waitFor(async () => ((await fetch(`http://127.0.0.1:${port}/-/ready`)).ok ? true : undefined), {
      timeoutMs: 30_000,
      what: `${name} to be ready`,
      describe: logs,
    });
  }
  return { logs };
}
