package config

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestExampleDocumentsEveryKey keeps agent.yaml.example and Config in step:
// the example may name only keys certsync knows, and every key certsync
// knows must appear in it (set, or in a comment).
func TestExampleDocumentsEveryKey(t *testing.T) {
	data, err := os.ReadFile("../../agent.yaml.example")
	if err != nil {
		t.Fatal(err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		t.Fatalf("agent.yaml.example is not YAML: %v", err)
	}
	if err := checkKeys(&root, reflect.TypeOf(Config{}), ""); err != nil {
		t.Fatalf("agent.yaml.example: %v", err)
	}
	text := string(data)
	var walk func(t reflect.Type, path string)
	walk = func(typ reflect.Type, path string) {
		for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice {
			typ = typ.Elem()
		}
		if typ.Kind() != reflect.Struct || typ.String() == "time.Duration" {
			return
		}
		for i := 0; i < typ.NumField(); i++ {
			f := typ.Field(i)
			tags := strings.Split(f.Tag.Get("yaml"), ",")
			tag := tags[0]
			if len(tags) > 1 && tags[1] == "inline" {
				walk(f.Type, path)
				continue
			}
			if tag == "" || tag == "-" {
				continue
			}
			if !strings.Contains(text, tag+":") {
				t.Errorf("agent.yaml.example does not document %s%s", path, tag)
			}
			walk(f.Type, path+tag+".")
		}
	}
	walk(reflect.TypeOf(Config{}), "")
}
