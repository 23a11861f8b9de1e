package winsvc

// Config is the service Install registers.
type Config struct {
	Name        string   // the service's name, also its Event Log source's and display name
	Description string   // shown in services.msc
	Args        []string // after this executable's path, e.g. run --config C:\ProgramData\certsync\agent.yaml
}
