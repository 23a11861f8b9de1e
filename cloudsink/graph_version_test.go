package cloudsink

import (
	"runtime/debug"
	"testing"
)

// The telemetry header names the SDK version the binary was built with
// (TestRelease checks a built binary records msgraph-sdk-go).
func TestModuleVersion(t *testing.T) {
	const sdk = "github.com/microsoftgraph/msgraph-sdk-go"
	tests := []struct {
		name string
		info *debug.BuildInfo
		want string
	}{
		{"in the build", &debug.BuildInfo{Deps: []*debug.Module{{Path: sdk + "-core", Version: "v1.4.0"}, {Path: sdk, Version: "v1.89.0"}}}, "1.89.0"},
		{"not in the build", &debug.BuildInfo{Deps: []*debug.Module{{Path: sdk + "-core", Version: "v1.4.0"}}}, "unknown"},
		{"no build info", nil, "unknown"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := moduleVersion(tc.info, sdk); got != tc.want {
				t.Errorf("moduleVersion = %q, want %q", got, tc.want)
			}
		})
	}
}
