package winsvc

// StateDirSDDL is the state directory's DACL: protected (P: nothing
// inherited), full file access (FA) for SYSTEM (SY) and the Administrators
// group (BA), inherited by files (OI) and folders (CI) below. No one else,
// not even Users, can read the state file, the log or the secrets there.
const StateDirSDDL = "D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)"
