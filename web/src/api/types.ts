/** Names for the API's shapes, all taken from the schema generated from the app's OpenAPI document
 *  (src/api/schema.d.ts, `npm run gen:api`): never written by hand, so a changed API breaks the build. */
import type { components } from "./schema";

type S = components["schemas"];
export type Conversation = S["ConversationOut"];
export type ConversationPage = S["ConversationPage"];
export type Message = S["MessageOut"];
export type MessagePage = S["MessagePage"];
export type Exchange = S["ExchangeOut"];
export type Guard = S["GuardOut"];
export type AuditEntry = S["AuditEntryOut"];
export type AuditPage = S["AuditPage"];
export type MessageCreate = S["MessageCreate"];
export type ConversationCreate = S["ConversationCreate"];
export type LabAuditPage = S["LabAuditPage"];
export type LabAuditEntry = S["LabAuditEntryOut"];
export type EdgeRefusalList = S["EdgeRefusalList"];
export type EdgeRefusal = S["EdgeRefusalOut"];
export type RequestEventList = S["RequestEventList"];
export type RequestEvent = S["RequestEventOut"];
