package runtime

import (
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/wasmwsgi/wasmwsgi/hostfuncs"
)

// Environ returns the CGI variables of a request, as PEP 3333 defines them. Values are
// the raw bytes of the request (the guest decodes them as latin-1):
//   - PATH_INFO is the percent-decoded path below SCRIPT_NAME; QUERY_STRING is not
//     decoded; the raw request target is kept in REQUEST_URI and RAW_URI.
//   - Request headers become HTTP_<NAME> with "-" turned into "_"; Content-Type and
//     Content-Length become CONTENT_TYPE and CONTENT_LENGTH. Repeated headers are joined
//     with ",". Headers whose name contains "_" are dropped, so that "X_Forwarded_For"
//     cannot pose as "X-Forwarded-For".
//   - CONTENT_LENGTH is absent for a chunked body; the shim then sets
//     wsgi.input_terminated.
func Environ(req *Request) []hostfuncs.Pair {
	r := req.HTTP
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if req.Scheme != "" {
		scheme = req.Scheme
	}
	host := r.Host
	if req.Host != "" {
		host = req.Host
	}
	serverName, serverPort := hostPort(host, "")
	if local, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		localHost, localPort := hostPort(local.String(), "")
		if serverName == "" {
			serverName = localHost
		}
		if serverPort == "" {
			serverPort = localPort
		}
	}
	if serverPort == "" {
		serverPort = map[string]string{"http": "80", "https": "443"}[scheme]
	}
	remoteAddr, remotePort := hostPort(r.RemoteAddr, "")
	if req.Client != "" {
		remoteAddr, remotePort = req.Client, ""
	}

	env := []hostfuncs.Pair{
		{Name: "REQUEST_METHOD", Value: r.Method},
		{Name: "SCRIPT_NAME", Value: req.ScriptName},
		{Name: "PATH_INFO", Value: req.PathInfo},
		{Name: "QUERY_STRING", Value: r.URL.RawQuery},
		{Name: "REQUEST_URI", Value: r.RequestURI},
		{Name: "RAW_URI", Value: r.RequestURI},
		{Name: "SERVER_NAME", Value: serverName},
		{Name: "SERVER_PORT", Value: serverPort},
		{Name: "SERVER_PROTOCOL", Value: r.Proto},
		{Name: "SERVER_SOFTWARE", Value: "wasmwsgi"},
		{Name: "GATEWAY_INTERFACE", Value: "CGI/1.1"},
		{Name: "REMOTE_ADDR", Value: remoteAddr},
		{Name: "REMOTE_PORT", Value: remotePort},
		{Name: "wsgi.url_scheme", Value: scheme},
	}
	if req.ID != "" {
		env = append(env, hostfuncs.Pair{Name: "wasmwsgi.request_id", Value: req.ID})
	}
	if host != "" {
		env = append(env, hostfuncs.Pair{Name: "HTTP_HOST", Value: host})
	}
	if _, ok := r.Header["Content-Length"]; ok && r.ContentLength >= 0 {
		env = append(env, hostfuncs.Pair{Name: "CONTENT_LENGTH", Value: strconv.FormatInt(r.ContentLength, 10)})
	}
	names := make([]string, 0, len(r.Header))
	for name := range r.Header {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		// Underscored names would alias dashed ones (X_User vs X-User); names that are
		// not tokens cannot come through net/http's server but are refused here too.
		if strings.IndexByte(name, '_') >= 0 || !hostfuncs.IsToken(name) {
			continue
		}
		key := strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
		switch key {
		case "CONTENT_LENGTH":
			continue // set above from the parsed length
		case "CONTENT_TYPE":
		case "HOST":
			continue // r.Host, above
		default:
			key = "HTTP_" + key
		}
		env = append(env, hostfuncs.Pair{Name: key, Value: strings.Join(r.Header[name], ",")})
	}
	return env
}

// hostPort splits "host:port", tolerating a missing port and IPv6 brackets.
func hostPort(hp, defPort string) (string, string) {
	if h, p, err := net.SplitHostPort(hp); err == nil {
		return h, p
	}
	return strings.Trim(hp, "[]"), defPort
}
