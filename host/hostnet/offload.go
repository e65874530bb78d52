// Checksum offload of plan links: off where the plan asks for checksums in software.

package hostnet

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/dvrflow/dvrflow/plan"
)

// ethtoolValue is the kernel's struct ethtool_value.
type ethtoolValue struct {
	cmd  uint32
	data uint32
}

// ifreqData is the kernel's struct ifreq with its ifr_data member.
type ifreqData struct {
	name [unix.IFNAMSIZ]byte
	data uintptr
	_    [24 - unsafe.Sizeof(uintptr(0))]byte
}

// ethtool runs one ETHTOOL_G*/S* value command on device dev through socket fd.
func ethtool(fd int, dev string, cmd, data uint32) (uint32, error) {
	v := ethtoolValue{cmd: cmd, data: data}
	var ifr ifreqData
	copy(ifr.name[:], dev)
	ifr.data = uintptr(unsafe.Pointer(&v))
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr))); errno != 0 {
		return 0, errno
	}
	return v.data, nil
}

// checksums turns transmit checksum offload off on the namespace's links that ask for
// software checksums (plan.Link.SoftwareChecksum), on a thread inside the namespace.
func (r *applyRun) checksums(ns *plan.Namespace) error {
	var devs []string
	for _, l := range ns.Links {
		if l.SoftwareChecksum {
			devs = append(devs, l.Name)
		}
	}
	if len(devs) == 0 {
		return nil
	}
	n := r.full(ns.Name)
	return inNamespace(r.nsh[n], func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("hostnet: %s: ethtool socket: %w", n, err)
		}
		defer unix.Close(fd)
		for _, dev := range devs {
			on, err := ethtool(fd, dev, unix.ETHTOOL_GTXCSUM, 0)
			if err != nil {
				return fmt.Errorf("hostnet: %s: tx checksum offload of %s: %w", n, dev, err)
			}
			if on == 0 {
				continue
			}
			if _, err := ethtool(fd, dev, unix.ETHTOOL_STXCSUM, 0); err != nil {
				return fmt.Errorf("hostnet: %s: turn tx checksum offload of %s off: %w", n, dev, err)
			}
			r.changed("tx checksum offload off on %s in %s", dev, n)
		}
		return nil
	})
}
