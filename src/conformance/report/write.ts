// Writes the report in the formats asked for into one folder.
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { ConformanceReport } from '../model.ts'
import { renderHtml } from './html.ts'
import { renderJunit } from './junit.ts'
import { renderMarkdown } from './markdown.ts'

export const REPORT_FORMATS = ['md', 'html', 'junit', 'json'] as const
export type ReportFormat = (typeof REPORT_FORMATS)[number]

export const REPORT_FILES: Readonly<Record<ReportFormat, string>> = {
  md: 'conformance-report.md',
  html: 'conformance-report.html',
  junit: 'conformance-junit.xml',
  json: 'conformance-report.json',
}

/** Absent values are written as null, so every record has the same keys. */
export function renderJson(report: ConformanceReport): string {
  return `${JSON.stringify(report, (_key, value: unknown) => (value === undefined ? null : value), 2)}\n`
}

export function renderReport(report: ConformanceReport, format: ReportFormat): string {
  switch (format) {
    case 'md':
      return renderMarkdown(report)
    case 'html':
      return renderHtml(report)
    case 'junit':
      return renderJunit(report)
    case 'json':
      return renderJson(report)
  }
}

export function parseFormats(value: string | undefined): ReportFormat[] {
  if (value === undefined) return [...REPORT_FORMATS]
  const formats = value
    .split(',')
    .map((f) => f.trim().toLowerCase())
    .filter(Boolean)
  const unknown = formats.filter((f) => !(REPORT_FORMATS as readonly string[]).includes(f))
  if (unknown.length > 0 || formats.length === 0) throw new Error(`--format: unknown format ${unknown.join(', ') || '(none)'}; use ${REPORT_FORMATS.join(',')}`)
  return [...new Set(formats)] as ReportFormat[]
}

/** Returns the paths written. */
export function writeReports(report: ConformanceReport, dir: string, formats: readonly ReportFormat[]): string[] {
  mkdirSync(dir, { recursive: true })
  return formats.map((format) => {
    const path = join(dir, REPORT_FILES[format])
    writeFileSync(path, renderReport(report, format))
    return path
  })
}
