package exotest

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Exchange exception types the emulator raises.
const (
	typeNotFound      = "Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException"
	typeAmbiguous     = "Microsoft.Exchange.Configuration.Tasks.ManagementObjectAmbiguousException"
	typeWriteScope    = "Microsoft.Exchange.Configuration.Tasks.TaskInvalidOperationException"
	typeParameter     = "System.Management.Automation.ParameterBindingException"
	typeInvalidValue  = "Microsoft.Exchange.Data.DataValidationException"
	typeUnknownCmdlet = "System.Management.Automation.CommandNotFoundException"
)

// serverName is the server named in "couldn't be found on" messages.
const serverName = "EMU01A001.PROD.OUTLOOK.COM"

// response is an answer not yet written.
type response struct {
	status  int
	header  http.Header
	body    []byte
	exType  string // the exception type of a cmdlet error
	isWrite bool
}

func (resp response) write(w http.ResponseWriter, r *http.Request) {
	for k, vs := range resp.header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	body := resp.body
	if len(body) > 0 && strings.Contains(strings.ToLower(r.Header.Get("Accept-Encoding")), "gzip") {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		// Writes to a bytes.Buffer do not fail.
		_, _ = zw.Write(body)
		_ = zw.Close()
		body = buf.Bytes()
		w.Header().Set("Content-Encoding", "gzip")
		w.Header().Add("Vary", "Accept-Encoding")
	}
	if len(body) > 0 {
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	}
	w.WriteHeader(resp.status)
	_, _ = w.Write(body)
}

const contentTypeJSON = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"

func jsonResponse(status int, v any) response {
	h := http.Header{}
	h.Set("Content-Type", contentTypeJSON)
	h.Set("Request-Id", newGUID())
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only maps, slices and strings built here are marshalled
	}
	return response{status: status, header: h, body: b}
}

// apiError is the admin API's error shape for a request it refuses before
// any cmdlet runs: {"error":{"code","message"}}.
func apiError(status int, code, message string) response {
	resp := jsonResponse(status, map[string]any{"error": map[string]any{"code": code, "message": message}})
	if status == http.StatusUnauthorized {
		resp.header.Set("WWW-Authenticate", `Bearer client_id="00000002-0000-0ff1-ce00-000000000000", token_types="app_asserted_user_v1 service_asserted_app_v1", error="invalid_token"`)
	}
	return resp
}

// cmdletError is the shape of a cmdlet that ran and failed: the detail's
// message is "<error id>|<exception type>|<text>", as the
// ExchangeOnlineManagement module and public clients split it.
func cmdletError(exType, format string, args ...any) response {
	text := fmt.Sprintf(format, args...)
	id := fmt.Sprintf("Ex%06X", hash(exType)&0xFFFFFF)
	resp := jsonResponse(http.StatusBadRequest, map[string]any{
		"error": map[string]any{
			"code":    "InternalServerError",
			"message": "Error executing cmdlet",
			"details": []any{map[string]any{
				"code":    "Client",
				"target":  "",
				"message": id + "|" + exType + "|" + text,
			}},
			"innererror": map[string]any{
				"message": "Error executing cmdlet",
				"type":    "Microsoft.Exchange.Admin.OData.Core.ODataServiceException",
			},
		},
	})
	resp.exType = exType
	return resp
}

func hash(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h = (h ^ uint32(s[i])) * 16777619
	}
	return h
}

func throttled(after time.Duration) response {
	resp := apiError(http.StatusTooManyRequests, "TooManyRequests", "The request was throttled. Retry after the time given in the Retry-After header.")
	resp.header.Set("Retry-After", strconv.FormatInt(int64((after+time.Second-1)/time.Second), 10))
	return resp
}

func failure(status int) response {
	code := strings.ReplaceAll(http.StatusText(status), " ", "")
	return apiError(status, code, "Injected failure: "+http.StatusText(status)+".")
}

// notFound is Exchange's message for an -Identity nothing matches.
func notFound(identity string) response {
	return cmdletError(typeNotFound, "The operation couldn't be performed because object '%s' couldn't be found on '%s'.", identity, serverName)
}
