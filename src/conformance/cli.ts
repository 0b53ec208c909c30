// `fapi-gateway conformance`: run the self-assessment, print progress and a summary, write
// the reports. Exit code 0 only when every required check passed; 1 when one failed; 2 for
// a usage or configuration problem.
import { parseArgs } from 'node:util'
import { ConformanceConfigError, loadRunnerConfig, type RunnerSettings } from './config.ts'
import type { DevTarget } from '../../dev/conformance-target.ts'
import { loadDevelopmentModule } from '../development.ts'
import { SELF_ASSESSMENT_LABEL } from './model.ts'
import { createProgressPrinter, renderSummary } from './report/terminal.ts'
import { parseFormats, writeReports, REPORT_FORMATS } from './report/write.ts'
import { runConformance } from './runner.ts'
import type { MintToken } from './tokens.ts'

export const CONFORMANCE_USAGE = `usage:
  fapi-gateway conformance --config runner.yaml [--out DIR] [--format ${REPORT_FORMATS.join(',')}]
  fapi-gateway conformance --dev [--mode dpop|mtls] [--out DIR] [--format ...]

  --config FILE   runner configuration (target, mode, partner identities, token source); see docs/conformance.md
  --dev           assess the development environment of \`npm run demo\`, started in-process
  --mode          with --dev: dpop (default) or mtls
  --out DIR       write the reports into DIR (default: no files, terminal only)
  --format LIST   report formats, comma-separated (default: all)

exit code: 0 every required check passed, 1 a required check failed, 2 usage or configuration error
${SELF_ASSESSMENT_LABEL}.`

export interface CommandIo {
  readonly out: (text: string) => void
  readonly err: (text: string) => void
  readonly colour: boolean
}

const processIo: CommandIo = {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
  colour: process.stdout.isTTY === true && process.env.NO_COLOR === undefined,
}

export async function runConformanceCommand(argv: readonly string[], io: CommandIo = processIo): Promise<number> {
  let values: { config?: string; out?: string; format?: string; dev?: boolean; mode?: string; help?: boolean }
  try {
    values = parseArgs({
      args: [...argv],
      options: {
        config: { type: 'string' },
        out: { type: 'string' },
        format: { type: 'string' },
        dev: { type: 'boolean' },
        mode: { type: 'string' },
        help: { type: 'boolean' },
      },
    }).values
  } catch (error) {
    io.err(`${(error as Error).message}\n${CONFORMANCE_USAGE}\n`)
    return 2
  }
  if (values.help) {
    io.out(`${CONFORMANCE_USAGE}\n`)
    return 0
  }
  if ((values.config === undefined) === (values.dev !== true)) {
    io.err(`give exactly one of --config FILE and --dev\n${CONFORMANCE_USAGE}\n`)
    return 2
  }
  const mode = values.mode ?? 'dpop'
  if (mode !== 'dpop' && mode !== 'mtls') {
    io.err(`--mode: must be dpop or mtls\n`)
    return 2
  }
  let formats
  try {
    formats = parseFormats(values.format)
  } catch (error) {
    io.err(`${(error as Error).message}\n`)
    return 2
  }

  let settings: RunnerSettings
  let mintToken: MintToken | undefined
  let dev: DevTarget | undefined
  if (values.config !== undefined) {
    try {
      settings = loadRunnerConfig(values.config)
    } catch (error) {
      if (error instanceof ConformanceConfigError) {
        io.err(`${error.message}\n`)
        return 2
      }
      throw error
    }
  } else {
    const { startDevTarget } = await loadDevelopmentModule(() => import('../../dev/conformance-target.ts'))
    dev = await startDevTarget(mode)
    settings = dev.settings
    mintToken = dev.mintToken
  }

  try {
    io.out(`fapi-gateway conformance: ${SELF_ASSESSMENT_LABEL.toLowerCase()}\n`)
    io.out(`target ${settings.target.method} ${settings.target.url} (${settings.mode}), TLS probes ${settings.tlsProbe.host}:${settings.tlsProbe.port}\n`)
    if (settings.authorizationServer) io.out(`authorization server ${settings.authorizationServer.issuer}\n`)
    io.out('\n')
    const report = await runConformance({ settings, ...(mintToken && { mintToken }), onProgress: createProgressPrinter({ colour: io.colour, write: io.out }) })
    io.out(renderSummary(report, { colour: io.colour }))
    if (values.out !== undefined) {
      for (const path of writeReports(report, values.out, formats)) io.out(`wrote ${path}\n`)
    }
    return report.passed ? 0 : 1
  } catch (error) {
    if (error instanceof ConformanceConfigError) {
      io.err(`${error.message}\n`)
      return 2
    }
    throw error
  } finally {
    await dev?.close()
  }
}
