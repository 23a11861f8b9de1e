package cloudsink

import (
	"fmt"
	"net/url"
	"strings"
)

// Endpoints are the service roots of one Microsoft cloud.
type Endpoints struct {
	Graph     string // Microsoft Graph root, e.g. https://graph.microsoft.com
	Authority string // Entra ID authority host, e.g. https://login.microsoftonline.com/
	// Exchange is Exchange Online's root, e.g. https://outlook.office365.com;
	// it is also the token resource of its admin API.
	Exchange string
}

// environmentNames lists the clouds certsync knows, in the order errors
// name them.
func environmentNames() []string { return []string{"global", "usgov", "usgovdod", "china"} }

// EnvironmentEndpoints returns the endpoints of a cloud by name: "global",
// "usgov" (GCC High, L4), "usgovdod" (DoD, L5) or "china" (21Vianet).
// Graph, Exchange and the authority differ together, so they are chosen
// together.
func EnvironmentEndpoints(name string) (Endpoints, error) {
	switch name {
	case "global":
		return Endpoints{Graph: "https://graph.microsoft.com", Authority: "https://login.microsoftonline.com/", Exchange: "https://outlook.office365.com"}, nil
	case "usgov":
		return Endpoints{Graph: "https://graph.microsoft.us", Authority: "https://login.microsoftonline.us/", Exchange: "https://outlook.office365.us"}, nil
	case "usgovdod":
		return Endpoints{Graph: "https://dod-graph.microsoft.us", Authority: "https://login.microsoftonline.us/", Exchange: "https://webmail.apps.mil"}, nil
	case "china":
		return Endpoints{Graph: "https://microsoftgraph.chinacloudapi.cn", Authority: "https://login.chinacloudapi.cn/", Exchange: "https://partner.outlook.cn"}, nil
	}
	return Endpoints{}, fmt.Errorf("cloudsink: unknown environment %q (valid: %s)", name, strings.Join(environmentNames(), ", "))
}

// environmentOrDefault resolves "" to "global".
func environmentOrDefault(name string) (string, Endpoints, error) {
	if name == "" {
		name = "global"
	}
	ep, err := EnvironmentEndpoints(name)
	return name, ep, err
}

// parseOverride checks an endpoint override: an https URL with a host and
// no path, query or credentials. what names the setting in errors.
func parseOverride(what, raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSuffix(raw, "/"))
	if err != nil {
		return nil, fmt.Errorf("cloudsink: %s %q: %w", what, raw, err)
	}
	switch {
	case u.Scheme != "https":
		return nil, fmt.Errorf("cloudsink: %s %q: must be an https URL (Entra and Graph clients refuse plain http)", what, raw)
	case u.Host == "" || u.Hostname() == "":
		return nil, fmt.Errorf("cloudsink: %s %q: no host", what, raw)
	case u.User != nil || u.RawQuery != "" || u.Fragment != "":
		return nil, fmt.Errorf("cloudsink: %s %q: only scheme, host and port are allowed", what, raw)
	case u.Path != "":
		return nil, fmt.Errorf("cloudsink: %s %q: give the base without a path (certsync adds /v1.0 itself)", what, raw)
	}
	return u, nil
}
