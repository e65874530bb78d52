// Command ofcapture is a logging OpenFlow proxy used by ../gen.sh to capture the exact bytes
// ovs-ofctl sends and Open vSwitch answers: it listens on a unix socket, forwards every
// connection to the bridge's management socket and writes each message, framed by its
// OpenFlow header, as "C2S <hex>" or "S2C <hex>" to the output file.
// It lives under testdata so that it is not part of the module's packages.
package main

import (
	"bufio"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"sync"

	"github.com/dvrflow/dvrflow/ofproto"
)

func main() {
	listen := flag.String("listen", "", "unix socket to listen on")
	upstream := flag.String("connect", "", "unix socket of the bridge (br.mgmt)")
	out := flag.String("out", "", "capture file")
	flag.Parse()
	if *listen == "" || *upstream == "" || *out == "" {
		log.Fatal("ofcapture: -listen, -connect and -out are required")
	}
	f, err := os.Create(*out)
	if err != nil {
		log.Fatal(err)
	}
	l, err := net.Listen("unix", *listen)
	if err != nil {
		log.Fatal(err)
	}
	var mu sync.Mutex
	for {
		c, err := l.Accept()
		if err != nil {
			log.Fatal(err)
		}
		go func() {
			defer c.Close()
			u, err := net.Dial("unix", *upstream)
			if err != nil {
				log.Print(err)
				return
			}
			defer u.Close()
			done := make(chan struct{}, 2)
			pump := func(dir string, dst io.Writer, src io.Reader) {
				defer func() { done <- struct{}{} }()
				r := bufio.NewReader(src)
				for {
					_, msg, err := ofproto.ReadMessage(r, nil)
					if err != nil {
						return
					}
					mu.Lock()
					fmt.Fprintf(f, "%s %s\n", dir, hex.EncodeToString(msg))
					f.Sync()
					mu.Unlock()
					if _, err := dst.Write(msg); err != nil {
						return
					}
				}
			}
			go pump("C2S", u, c)
			go pump("S2C", c, u)
			<-done
		}()
	}
}
