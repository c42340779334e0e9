import type { StatementKind } from './facts.js';

const FIXED: Record<string, StatementKind> = {
  SelectStmt: 'select',
  InsertStmt: 'insert',
  UpdateStmt: 'update',
  DeleteStmt: 'delete',
  MergeStmt: 'merge',
  TruncateStmt: 'truncate',
  GrantStmt: 'grant',
  CreateRoleStmt: 'role',
  AlterRoleStmt: 'role',
  AlterRoleSetStmt: 'role',
  DropRoleStmt: 'role',
  ReassignOwnedStmt: 'role',
  DropOwnedStmt: 'role',
  AlterDefaultPrivilegesStmt: 'grant',
  VariableShowStmt: 'show',
  TransactionStmt: 'transaction',
  ConstraintsSetStmt: 'transaction',
  PrepareStmt: 'prepare',
  ExecuteStmt: 'execute',
  DeallocateStmt: 'deallocate',
  CallStmt: 'call',
  DoStmt: 'do',
  RuleStmt: 'ddl.create',
  ViewStmt: 'ddl.create',
  IndexStmt: 'ddl.create',
  DefineStmt: 'ddl.create',
  CompositeTypeStmt: 'ddl.create',
  ImportForeignSchemaStmt: 'ddl.create',
  RenameStmt: 'ddl.alter',
  CommentStmt: 'ddl.alter',
  SecLabelStmt: 'ddl.alter',
  RefreshMatViewStmt: 'ddl.alter',
  AlterSystemStmt: 'ddl.alter',
  AlterOwnerStmt: 'ddl.alter',
  AlterObjectSchemaStmt: 'ddl.alter',
  AlterObjectDependsStmt: 'ddl.alter',
  DropStmt: 'ddl.drop',
  DropdbStmt: 'ddl.drop',
  DropTableSpaceStmt: 'ddl.drop',
  DropSubscriptionStmt: 'ddl.drop',
  DropUserMappingStmt: 'ddl.drop',
  VacuumStmt: 'utility',
  ClusterStmt: 'utility',
  ReindexStmt: 'utility',
  CheckPointStmt: 'utility',
  ListenStmt: 'utility',
  UnlistenStmt: 'utility',
  NotifyStmt: 'utility',
  LoadStmt: 'utility',
  DiscardStmt: 'utility',
  LockStmt: 'utility',
  DeclareCursorStmt: 'utility',
  FetchStmt: 'utility',
  ClosePortalStmt: 'utility',
};

/** The kind a statement's top node names, before effects are considered. */
export function kindOfNode(type: string, node: Record<string, unknown>): StatementKind {
  switch (type) {
    case 'GrantRoleStmt':
      return node.is_grant ? 'grant' : 'revoke';
    case 'GrantStmt':
      return node.is_grant ? 'grant' : 'revoke';
    case 'CopyStmt':
      return node.is_from ? 'copy.in' : 'copy.out';
    case 'VariableSetStmt':
      return node.kind === 'VAR_RESET' || node.kind === 'VAR_RESET_ALL' ? 'reset' : 'set';
    case 'ExplainStmt':
      return 'explain';
  }
  const fixed = FIXED[type];
  if (fixed) return fixed;
  if (type.startsWith('Create')) return 'ddl.create';
  if (type.startsWith('Alter')) return 'ddl.alter';
  if (type.startsWith('Drop')) return 'ddl.drop';
  return 'other';
}

export const DML_KINDS: ReadonlySet<StatementKind> = new Set(['insert', 'update', 'delete', 'merge']);
