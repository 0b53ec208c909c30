// The development commands (demo, dev, token, request, certs, conformance --dev) live in dev/,
// outside src/, so that the production image (which copies src/ only) carries none of them.
export async function loadDevelopmentModule<T>(load: () => Promise<T>): Promise<T> {
  try {
    return await load()
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ERR_MODULE_NOT_FOUND' || !String((error as Error).message).includes('/dev/')) throw error
    throw new Error('this is a development command: it needs the dev/ folder of a source checkout, which the production image leaves out')
  }
}
