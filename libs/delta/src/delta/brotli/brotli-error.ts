/** A brotli stream that breaks RFC 7932 or ends early; the section reader reports it as corruption. */
export class BrotliFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BrotliFormatError';
  }
}
