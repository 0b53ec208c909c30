// The file watcher behind hot reload: content changes count, touches and identical content
// do not, Kubernetes-style symlink swaps are seen, and policy files come and go.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createFileWatcher } from '../../../src/reload/file-watch.ts'

function scratch(): { dir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'fapi-watch-'))
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) }
}

test('reports a file whose content changed, and not one that was only touched or rewritten the same', (t) => {
  const { dir, remove } = scratch()
  t.after(remove)
  const file = join(dir, 'server.crt')
  writeFileSync(file, 'one')
  const watcher = createFileWatcher({ files: [file], yamlDirs: [] })
  assert.deepEqual(watcher.check(), [])
  utimesSync(file, new Date(), new Date(Date.now() + 5_000))
  writeFileSync(file, 'one')
  assert.deepEqual(watcher.check(), [], 'same bytes: no change')
  writeFileSync(file, 'two')
  assert.deepEqual(watcher.check(), [file])
  assert.deepEqual(watcher.check(), [], 'reported once')
})

test('sees a file replaced by rename, removed, and back', (t) => {
  const { dir, remove } = scratch()
  t.after(remove)
  const file = join(dir, 'client-ca.crt')
  writeFileSync(file, 'a')
  const watcher = createFileWatcher({ files: [file], yamlDirs: [] })
  writeFileSync(`${file}.next`, 'b')
  renameSync(`${file}.next`, file)
  assert.deepEqual(watcher.check(), [file])
  rmSync(file)
  assert.deepEqual(watcher.check(), [file])
  writeFileSync(file, 'b')
  assert.deepEqual(watcher.check(), [file])
})

test('follows the symlink swap of a Kubernetes Secret or ConfigMap volume (..data -> ..timestamp)', (t) => {
  const { dir, remove } = scratch()
  t.after(remove)
  mkdirSync(join(dir, '..2026_01_01'))
  writeFileSync(join(dir, '..2026_01_01', 'tls.crt'), 'first')
  symlinkSync('..2026_01_01', join(dir, '..data'))
  symlinkSync('..data/tls.crt', join(dir, 'tls.crt'))
  const file = join(dir, 'tls.crt')
  const watcher = createFileWatcher({ files: [file], yamlDirs: [] })
  mkdirSync(join(dir, '..2026_02_01'))
  writeFileSync(join(dir, '..2026_02_01', 'tls.crt'), 'second')
  symlinkSync('..2026_02_01', join(dir, '..data_tmp'))
  renameSync(join(dir, '..data_tmp'), join(dir, '..data'))
  assert.deepEqual(watcher.check(), [file])
})

test('watches the *.yaml files of a folder: added, changed and removed files, nothing else', (t) => {
  const { dir, remove } = scratch()
  t.after(remove)
  writeFileSync(join(dir, 'accounts.yaml'), 'routes: []')
  const watcher = createFileWatcher({ files: [], yamlDirs: [dir] })
  writeFileSync(join(dir, 'notes.txt'), 'ignored')
  assert.deepEqual(watcher.check(), [])
  writeFileSync(join(dir, 'payments.yml'), 'routes: []')
  assert.deepEqual(watcher.check().sort(), [dir, join(dir, 'payments.yml')])
  writeFileSync(join(dir, 'accounts.yaml'), 'routes: [x]')
  assert.deepEqual(watcher.check(), [join(dir, 'accounts.yaml')])
  rmSync(join(dir, 'payments.yml'))
  assert.deepEqual(watcher.check().sort(), [dir, join(dir, 'payments.yml')])
})

test('watch() swaps the set of watched paths without reporting the switch as a change', (t) => {
  const { dir, remove } = scratch()
  t.after(remove)
  const a = join(dir, 'a.pem')
  const b = join(dir, 'b.pem')
  writeFileSync(a, 'a')
  writeFileSync(b, 'b')
  const watcher = createFileWatcher({ files: [a], yamlDirs: [] })
  watcher.watch({ files: [b], yamlDirs: [] })
  assert.deepEqual(watcher.check(), [])
  writeFileSync(a, 'a2')
  assert.deepEqual(watcher.check(), [], 'no longer watched')
  writeFileSync(b, 'b2')
  assert.deepEqual(watcher.check(), [b])
})

test("start() polls with an unref'd timer and reports changes; close() stops it", async (t) => {
  const { dir, remove } = scratch()
  t.after(remove)
  const file = join(dir, 'gateway.yaml')
  writeFileSync(file, 'x: 1')
  const watcher = createFileWatcher({ files: [file], yamlDirs: [] })
  const seen = new Promise<string[]>((resolve) => watcher.start(10, resolve))
  writeFileSync(file, 'x: 2')
  assert.deepEqual(await seen, [file])
  watcher.close()
})
