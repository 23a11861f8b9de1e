package main

import (
	_ "github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	_ "github.com/go-ldap/ldap/v3"
	_ "github.com/jimlambrt/gldap"
	_ "github.com/microsoftgraph/msgraph-sdk-go"
	_ "github.com/microsoftgraph/msgraph-sdk-go-core"
	_ "github.com/smallstep/pkcs7"
	_ "github.com/spf13/cobra"
	_ "go.etcd.io/bbolt"
	_ "go.uber.org/zap"
	_ "go.uber.org/zap/zaptest"
	_ "github.com/gofrs/flock"
	_ "github.com/Azure/azure-sdk-for-go/sdk/azcore"
	_ "github.com/microsoft/kiota-abstractions-go"
	_ "github.com/microsoft/kiota-http-go"
	_ "github.com/microsoft/kiota-authentication-azure-go"
	_ "gopkg.in/yaml.v3"
)

func main() {}
