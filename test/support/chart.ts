// The Helm chart as the tests see it: its values, examples and schema, and renders of it
// with test/support/helm-lite.ts (helm itself is not installed on our machines).
import { readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Ajv } from 'ajv'
import { parse as parseYaml } from 'yaml'
import { mergeValues, renderChart, type RenderedChart } from './helm-lite.ts'

export const CHART_DIR = fileURLToPath(new URL('../../helm/fapi-gateway', import.meta.url))

export function readYamlFile(path: string): unknown {
  return parseYaml(readFileSync(path, 'utf8'))
}

export function chartValues(): Record<string, unknown> {
  return readYamlFile(join(CHART_DIR, 'values.yaml')) as Record<string, unknown>
}

export function exampleFiles(): string[] {
  return readdirSync(join(CHART_DIR, 'examples'))
    .filter((name) => name.endsWith('.yaml'))
    .sort()
}

export function exampleValues(name: string): Record<string, unknown> {
  return readYamlFile(join(CHART_DIR, 'examples', name)) as Record<string, unknown>
}

/** values.yaml with the user's values coalesced over it, as Helm does before validating and rendering. */
export function valuesWith(...overrides: unknown[]): Record<string, unknown> {
  return overrides.reduce((merged: unknown, over) => mergeValues(merged, over), chartValues()) as Record<string, unknown>
}

export function valuesValidator(): (values: unknown) => string[] {
  const ajv = new Ajv({ allErrors: true, strictTypes: false })
  const validate = ajv.compile(JSON.parse(readFileSync(join(CHART_DIR, 'values.schema.json'), 'utf8')) as object)
  return (values) => (validate(values) ? [] : (validate.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message ?? ''}`))
}

export function render(values: unknown, namespace = 'payments'): RenderedChart {
  return renderChart(CHART_DIR, values, { releaseName: 'fapi-gateway', namespace })
}

export function documentOf(chart: RenderedChart, kind: string, name?: string): Record<string, any> {
  const found = chart.documents.find((d) => d.kind === kind && (name === undefined || (d.metadata as { name?: string }).name === name))
  if (!found) throw new Error(`no ${kind}${name ? ` ${name}` : ''} rendered`)
  return found as Record<string, any>
}

/** The alert rules of the rendered PrometheusRule, as a Prometheus rule file. */
export function alertRules(values: unknown, namespace = 'payments'): { groups: unknown[] } {
  const rule = documentOf(render(mergeValues(values, { metrics: { prometheusRule: { enabled: true } } }), namespace), 'PrometheusRule')
  return { groups: rule.spec.groups as unknown[] }
}

/** Every PromQL expression of the dashboard, with Grafana's variables replaced for a plain Prometheus. */
export function dashboardQueries(): { title: string; expr: string }[] {
  const dashboard = JSON.parse(readFileSync(join(CHART_DIR, 'dashboards', 'fapi-gateway.json'), 'utf8')) as {
    panels: { title: string; targets?: { expr: string }[] }[]
  }
  return dashboard.panels.flatMap((panel) =>
    (panel.targets ?? []).map((target) => ({
      title: panel.title,
      expr: target.expr.replaceAll('$__rate_interval', '1m').replaceAll('$namespace', '.*').replaceAll('$route', '.*'),
    })),
  )
}
