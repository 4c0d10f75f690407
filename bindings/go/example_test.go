package multicast_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	multicast "github.com/libmulticast/libmulticast/bindings/go"
)

// The module's "Basic Multicast" example.
func Example_basic() {
	group, err := multicast.Join("239.1.1.1", 9999, "")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer group.Close()
	group.Send("Hello group!")
	msg, _ := group.Receive(5 * time.Second)
	if msg != nil {
		fmt.Printf("From %s: %s\n", msg.Source, msg.Data)
	}
	// Output: From 10.203.0.1:9999: Hello group!
}

// The module's "Service Discovery" example.
func Example_serviceDiscovery() {
	group, err := multicast.Join("239.1.1.1", 9998, "")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer group.Close()
	announcement, _ := json.Marshal(map[string]any{"service": "api", "port": 8080, "host": "10.0.0.5"})
	group.Send(string(announcement))
	msg, _ := group.Receive(10 * time.Second)
	if msg != nil {
		var info struct {
			Service, Host string
			Port          int
		}
		json.Unmarshal(msg.Data, &info)
		fmt.Printf("Found %s at %s:%d\n", info.Service, info.Host, info.Port)
	}
	// Output: Found api at 10.0.0.5:8080
}

// The module's "Continuous Listener" example, bounded to three messages.
func Example_continuousListener() {
	group, err := multicast.Join("239.1.1.1", 9997, "")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer group.Close()
	for i := 1; i <= 3; i++ {
		group.Send(fmt.Sprintf("reading %d", i))
	}
	for received := 0; received < 3; {
		msg, err := group.Receive(60 * time.Second)
		if err != nil {
			break
		}
		if msg != nil {
			fmt.Printf("[%s] %s\n", msg.Source, msg.Data)
			received++
		}
	}
	// Output:
	// [10.203.0.1:9997] reading 1
	// [10.203.0.1:9997] reading 2
	// [10.203.0.1:9997] reading 3
}

// The module's "Using Dict Messages" example: maps are sent as JSON.
func Example_dictMessages() {
	group, err := multicast.Join("239.1.1.1", 9996, "")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer group.Close()
	group.Send(map[string]any{"action": "heartbeat", "node": "worker-1"})
	msg, _ := group.Receive(5 * time.Second)
	if msg != nil {
		var data map[string]any
		json.Unmarshal(msg.Data, &data)
		fmt.Println(data["action"])
	}
	// Output: heartbeat
}

// The module's "Error Handling" example, plus what errors look like.
func Example_errorHandling() {
	_, err := multicast.Join("192.168.1.1", 9995, "")
	fmt.Println(errors.Is(err, multicast.ErrNotMulticast), err)

	group, err := multicast.Join("239.1.1.1", 9995, "")
	if err != nil {
		fmt.Println(err)
		return
	}
	func() {
		defer group.Close() // try ... finally
		if err := group.Send("Hello!"); err != nil {
			fmt.Println(err)
			return
		}
		if msg, err := group.Receive(5 * time.Second); err == nil && msg != nil {
			fmt.Printf("Received: %s\n", msg.Data)
		}
	}()
	err = group.Send("late")
	fmt.Println(errors.Is(err, multicast.ErrClosed), err)
	// Output:
	// true address 192.168.1.1 is not a multicast address
	// Received: Hello!
	// true send failed: group is closed
}
