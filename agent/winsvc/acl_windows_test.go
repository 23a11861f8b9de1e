//go:build windows

package winsvc

import (
	"testing"
	"unsafe"

	"golang.org/x/sys/windows"
)

// TestStateDirSDDL parses the SDDL as Windows does: a protected DACL of
// exactly two entries, full file access for SYSTEM and Administrators,
// inherited by files and folders.
func TestStateDirSDDL(t *testing.T) {
	sd, err := windows.SecurityDescriptorFromString(StateDirSDDL)
	if err != nil {
		t.Fatal(err)
	}
	control, _, err := sd.Control()
	if err != nil {
		t.Fatal(err)
	}
	if control&windows.SE_DACL_PROTECTED == 0 {
		t.Error("the DACL is not protected: %ProgramData%'s entries (Users: read) would be inherited")
	}
	dacl, err := stateDirDACL()
	if err != nil {
		t.Fatal(err)
	}
	checkDACL(t, dacl)
}

// fileAllAccess is FILE_ALL_ACCESS (SDDL "FA"): STANDARD_RIGHTS_REQUIRED |
// SYNCHRONIZE | 0x1FF; x/sys/windows does not name it.
const fileAllAccess = 0x1F01FF

func checkDACL(t *testing.T, dacl *windows.ACL) {
	t.Helper()
	if dacl.AceCount != 2 {
		t.Fatalf("%d entries, want 2", dacl.AceCount)
	}
	for i, want := range []windows.WELL_KNOWN_SID_TYPE{windows.WinLocalSystemSid, windows.WinBuiltinAdministratorsSid} {
		var ace *windows.ACCESS_ALLOWED_ACE
		if err := windows.GetAce(dacl, uint32(i), &ace); err != nil {
			t.Fatal(err)
		}
		sid := (*windows.SID)(unsafe.Pointer(&ace.SidStart))
		if ace.Header.AceType != windows.ACCESS_ALLOWED_ACE_TYPE || !sid.IsWellKnown(want) {
			t.Errorf("entry %d: type %d for %s, want an allow entry for well-known SID %d", i, ace.Header.AceType, sid, want)
		}
		if ace.Mask != fileAllAccess {
			t.Errorf("entry %d (%s): mask %#x, want FILE_ALL_ACCESS", i, sid, ace.Mask)
		}
		if inherit := uint8(windows.OBJECT_INHERIT_ACE | windows.CONTAINER_INHERIT_ACE); ace.Header.AceFlags&inherit != inherit {
			t.Errorf("entry %d (%s): flags %#x, want inherited by files and folders", i, sid, ace.Header.AceFlags)
		}
	}
}

// TestSecureDir applies the ACL to a real directory (Windows only) and
// reads it back.
func TestSecureDir(t *testing.T) {
	dir := t.TempDir()
	if err := SecureDir(dir); err != nil {
		t.Fatal(err)
	}
	sd, err := windows.GetNamedSecurityInfo(dir, windows.SE_FILE_OBJECT, windows.DACL_SECURITY_INFORMATION)
	if err != nil {
		t.Fatal(err)
	}
	dacl, _, err := sd.DACL()
	if err != nil {
		t.Fatal(err)
	}
	checkDACL(t, dacl)
}
