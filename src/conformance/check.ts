// One conformance check: what it assesses, where the requirement comes from, and how it runs.
import type { Outcome } from './judge.ts'
import type { Level, Mode, SectionId } from './model.ts'
import type { Recorder, RunContext } from './context.ts'

export interface CheckDefinition {
  readonly id: string
  readonly title: string
  readonly section: SectionId
  /** The requirement in words, as the report shows it. */
  readonly requirement: string
  /** Spec references, e.g. "RFC 9449 §4.3 check 9; FAPI2 SP 5.3.4-1". */
  readonly reference: string
  /** A recommended check that is not met is reported as a warning and does not change the exit code. */
  readonly level: Level | ((ctx: RunContext) => Level)
  /** The deployment modes the check belongs to; every mode when undefined. Others leave it out of the run. */
  readonly modes?: readonly Mode[]
  /** Why the check does not apply to this run, or undefined when it does. */
  readonly skipReason?: (ctx: RunContext) => string | undefined
  run(ctx: RunContext, recorder: Recorder): Promise<Outcome>
}

export function levelOf(check: CheckDefinition, ctx: RunContext): Level {
  return typeof check.level === 'function' ? check.level(ctx) : check.level
}
