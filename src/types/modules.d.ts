// Type declarations for dependencies that ship none. Only what this project calls is declared.

declare module 'dcmjs' {
  interface DictionaryEntry {
    tag: string;
    vr: string;
    vm: string;
    name: string;
    version?: string;
  }
  const dcmjs: {
    data: {
      DicomMetaDictionary: {
        dictionary: Record<string, DictionaryEntry | undefined>;
        nameMap: Record<string, DictionaryEntry | undefined>;
      };
      DicomMessage: {
        readFile(
          buffer: ArrayBuffer,
          options?: Record<string, unknown>,
        ): {
          meta: Record<string, unknown>;
          dict: Record<string, { vr: string; Value?: unknown[] }>;
        };
      };
      /** A naturalised dataset (keyword → value, with `_meta`) as a DICOM Part 10 file to write. */
      datasetToDict(dataset: Record<string, unknown>): { write(): ArrayBuffer };
    };
    log: { setLevel(level: string): void };
  };
  export default dcmjs;
}

/** The Emscripten factories of the Cornerstone codec packages (CommonJS, Node and browser). */
interface EmscriptenCodecDecoder {
  getEncodedBuffer(length: number): Uint8Array;
  getDecodedBuffer(): Uint8Array;
  decode(): void;
  getFrameInfo(): {
    width: number;
    height: number;
    bitsPerSample: number;
    componentCount: number;
    isSigned?: boolean;
  };
  getInterleaveMode?(): number;
  delete?(): void;
}
interface EmscriptenCodecModule {
  JpegLSDecoder: new () => EmscriptenCodecDecoder;
  J2KDecoder: new () => EmscriptenCodecDecoder;
  HTJ2KDecoder: new () => EmscriptenCodecDecoder;
  JPEGDecoder: new () => EmscriptenCodecDecoder;
}
type EmscriptenCodecFactory = (options?: {
  print?: (s: string) => void;
  printErr?: (s: string) => void;
  locateFile?: (f: string) => string;
}) => Promise<EmscriptenCodecModule>;
declare module '@cornerstonejs/codec-charls/decodewasmjs' {
  const factory: EmscriptenCodecFactory;
  export default factory;
}
declare module '@cornerstonejs/codec-openjpeg/decodewasmjs' {
  const factory: EmscriptenCodecFactory;
  export default factory;
}
declare module '@cornerstonejs/codec-openjph/wasmjs' {
  const factory: EmscriptenCodecFactory;
  export default factory;
}
declare module '@cornerstonejs/codec-libjpeg-turbo-8bit/decodewasmjs' {
  const factory: EmscriptenCodecFactory;
  export default factory;
}
