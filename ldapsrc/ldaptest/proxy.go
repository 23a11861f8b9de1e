package ldaptest

import (
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
)

// Proxy is a TCP proxy on a loopback port that a test puts between
// certsync and a directory server, to fail the connection at a moment of
// its choosing: Trigger runs an action once the server has sent a given
// number of bytes, in the middle of whatever it was sending (a search
// page), and Cut closes every connection. Point the configuration's URL
// at URL(); StartTLS and LDAPS pass through untouched (the server's
// certificate must name 127.0.0.1).
type Proxy struct {
	ln net.Listener
	wg sync.WaitGroup

	mu     sync.Mutex // guards everything below
	target string
	conns  map[net.Conn]struct{}
	closed bool
	sent   int64 // bytes from the server to clients since start or Trigger
	at     int64 // fire when sent reaches at (0: no trigger armed)
	action func()
	fired  int
}

// StartProxy listens on a free loopback port and forwards each connection
// to target (host:port); it stops at the end of the test.
func StartProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("ldaptest: proxy listen: %v", err)
	}
	p := &Proxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.close)
	return p
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// URL is ldap://Addr().
func (p *Proxy) URL() string { return "ldap://" + p.Addr() }

// Trigger arms action: when the server has sent n more bytes to clients
// (counted over all connections from now), the proxy forwards exactly
// those n bytes, runs action while holding the rest back, and then goes
// on. The action may Cut, restart the server, or both. It fires once.
func (p *Proxy) Trigger(n int64, action func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sent, p.at, p.action = 0, n, action
}

// CutAfter arms a cut of every connection after n more bytes from the
// server: the client gets part of a message and then the end of the stream.
func (p *Proxy) CutAfter(n int64) { p.Trigger(n, p.Cut) }

// Sent counts the bytes the server sent to clients since the proxy
// started or the last Trigger.
func (p *Proxy) Sent() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sent
}

// Fired counts the triggers that ran.
func (p *Proxy) Fired() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.fired
}

// Cut closes every connection open through the proxy, both ways.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		_ = c.Close()
	}
}

func (p *Proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go p.pipe(c)
	}
}

func (p *Proxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *Proxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		delete(p.conns, c)
	}
}

func (p *Proxy) pipe(c net.Conn) {
	defer p.wg.Done()
	defer c.Close()
	p.mu.Lock()
	target := p.target
	p.mu.Unlock()
	server, err := net.Dial("tcp", target)
	if err != nil {
		return // the client sees the connection close, as with a dead server
	}
	defer server.Close()
	if !p.track(c, server) {
		return
	}
	defer p.untrack(c, server)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = io.Copy(server, c)
		closeWrite(server)
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := server.Read(buf)
		if n > 0 && !p.forward(c, buf[:n]) {
			break
		}
		if err != nil {
			break
		}
	}
	closeWrite(c)
	<-done
}

// forward writes b to the client, firing the armed trigger at its byte.
func (p *Proxy) forward(c net.Conn, b []byte) bool {
	p.mu.Lock()
	var action func()
	first := b
	var rest []byte
	if p.at > 0 {
		if left := p.at - p.sent; left <= int64(len(b)) {
			first, rest = b[:left], b[left:]
			action, p.at = p.action, 0
			p.fired++
		}
	}
	p.sent += int64(len(first))
	p.mu.Unlock()
	if _, err := c.Write(first); err != nil {
		return false
	}
	if action == nil {
		return true
	}
	action()
	if len(rest) == 0 {
		return true
	}
	_, err := c.Write(rest)
	return err == nil
}

func (p *Proxy) close() {
	_ = p.ln.Close()
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// String names the proxy and its target, for test messages.
func (p *Proxy) String() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return fmt.Sprintf("proxy %s → %s", p.Addr(), p.target)
}
