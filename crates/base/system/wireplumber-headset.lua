-- homestick: a USB sound device (the employee's headset) takes calls and the ring while it is
-- plugged in; pulled, WirePlumber moves the streams back to the PC's own device and the call
-- goes on. Node names of USB devices start with alsa_output.usb- / alsa_input.usb-.
table.insert(alsa_monitor.rules, {
  matches = {
    { { "node.name", "matches", "alsa_output.usb-*" } },
    { { "node.name", "matches", "alsa_input.usb-*" } },
  },
  apply_properties = {
    ["priority.driver"] = 2000,
    ["priority.session"] = 2000,
  },
})
