declare module 'seek-bzip' {
  const Bunzip: {
    decode(input: Buffer, output?: Buffer, multistream?: boolean): Buffer;
  };
  export = Bunzip;
}
