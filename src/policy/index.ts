export { matchesPrincipal } from './match.js';
export {
  accessRulesFor,
  allowedGrants,
  decidePermission,
  decideSession,
  type PermissionDecision,
  type SessionDecision,
  type SessionDenialCode,
  type SessionRequest,
} from './decide.js';
