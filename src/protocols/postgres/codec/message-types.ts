/** Message type bytes a client (frontend) sends. */
export const FE = {
  Bind: 0x42, // B
  Close: 0x43, // C
  CopyData: 0x64, // d
  CopyDone: 0x63, // c
  CopyFail: 0x66, // f
  Describe: 0x44, // D
  Execute: 0x45, // E
  Flush: 0x48, // H
  FunctionCall: 0x46, // F
  Parse: 0x50, // P
  /** PasswordMessage, SASLInitialResponse, SASLResponse and GSSResponse share this byte. */
  Password: 0x70, // p
  Query: 0x51, // Q
  Sync: 0x53, // S
  Terminate: 0x58, // X
} as const;

/** Message type bytes a server (backend) sends. */
export const BE = {
  Authentication: 0x52, // R
  BackendKeyData: 0x4b, // K
  BindComplete: 0x32, // 2
  CloseComplete: 0x33, // 3
  CommandComplete: 0x43, // C
  CopyBothResponse: 0x57, // W
  CopyData: 0x64, // d
  CopyDone: 0x63, // c
  CopyInResponse: 0x47, // G
  CopyOutResponse: 0x48, // H
  DataRow: 0x44, // D
  EmptyQueryResponse: 0x49, // I
  ErrorResponse: 0x45, // E
  FunctionCallResponse: 0x56, // V
  NegotiateProtocolVersion: 0x76, // v
  NoData: 0x6e, // n
  NoticeResponse: 0x4e, // N
  NotificationResponse: 0x41, // A
  ParameterDescription: 0x74, // t
  ParameterStatus: 0x53, // S
  ParseComplete: 0x31, // 1
  PortalSuspended: 0x73, // s
  ReadyForQuery: 0x5a, // Z
  RowDescription: 0x54, // T
} as const;

/** The int32 that follows the length in an untyped startup-phase packet. */
export const REQUEST_CODE = {
  /** Protocol 3.0 StartupMessage. */
  Protocol3: 196608,
  Cancel: 80877102,
  SSL: 80877103,
  GSSENC: 80877104,
} as const;

/** The int32 subcode of an Authentication ('R') message. */
export const AUTH = {
  Ok: 0,
  KerberosV5: 2,
  CleartextPassword: 3,
  MD5Password: 5,
  GSS: 7,
  GSSContinue: 8,
  SSPI: 9,
  SASL: 10,
  SASLContinue: 11,
  SASLFinal: 12,
} as const;

/** Field codes of ErrorResponse and NoticeResponse. */
export const ERROR_FIELD = {
  Severity: 'S',
  SeverityNonLocalized: 'V',
  Code: 'C',
  Message: 'M',
  Detail: 'D',
  Hint: 'H',
  Position: 'P',
} as const;

/** The one-byte answers to SSLRequest and GSSENCRequest. */
export const SSL_ACCEPTED = 0x53; // S
export const SSL_REFUSED = 0x4e; // N
