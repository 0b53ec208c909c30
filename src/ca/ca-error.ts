/** An operator-facing CA failure: the message names the file or flag and what is wrong. */
export class CaError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'CaError'
  }
}
