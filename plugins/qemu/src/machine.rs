//! An image's `machine.json`: read from the operator's image directory, checked
//! against the engine's accelerator and limits, and turned into qemu's argv.
//!
//! ```json
//! {"version": 1, "chipset": "pc", "cpu": "max", "memory": 256, "threads": 1, "cores": 1,
//!  "sockets": 1, "network": "virtio-net-pci", "graphics": "VGA", "sound": "none",
//!  "keyboard": "PS/2", "mouse": "PS/2", "tablet": "none",
//!  "boot": {"kernel": "vmlinux", "initrd": "initrd.img", "append": "console=ttyS0 ..."}}
//! ```

use serde::Deserialize;

use crate::{Accel, QemuEngine};

/// The fields of `machine.json` this engine reads (others, such as the seed's
/// `uuid` or `mac`, are ignored).
#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct Machine {
    version: u32,
    #[serde(default = "default_chipset")]
    chipset: String,
    #[serde(default = "default_cpu")]
    cpu: String,
    /// MiB.
    #[serde(default)]
    memory: Option<u32>,
    #[serde(default)]
    threads: Option<u32>,
    #[serde(default)]
    cores: Option<u32>,
    #[serde(default)]
    sockets: Option<u32>,
    #[serde(default = "default_network")]
    network: String,
    #[serde(default = "default_graphics")]
    graphics: String,
    #[serde(default = "default_none")]
    sound: String,
    #[serde(default = "default_none")]
    tablet: String,
    boot: Option<Boot>,
}

/// Direct kernel boot: files of the image.
#[derive(Deserialize, Debug)]
pub struct Boot {
    kernel: String,
    #[serde(default)]
    initrd: Option<String>,
    #[serde(default)]
    append: String,
}

fn default_chipset() -> String {
    "pc".into()
}
fn default_cpu() -> String {
    "max".into()
}
fn default_network() -> String {
    "virtio-net-pci".into()
}
fn default_graphics() -> String {
    "VGA".into()
}
fn default_none() -> String {
    "none".into()
}

/// The guest's view of the host endpoint (PROTOCOL.md §1).
const GUESTFWD: &str = "user,id=n0,restrict=on,net=169.254.0.0/16,\
                        guestfwd=tcp:169.254.169.254:80-cmd:socat - UNIX-CONNECT:meta.sock";

/// A file name of the image (no folders, nothing hidden).
fn image_file(what: &str, name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "._-+".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "boot.{what} '{name}' must be a file name in the image's folder ([a-zA-Z0-9._+-], not starting with '.')"
        ))
    }
}

impl Machine {
    /// Parses `machine.json`.
    pub fn parse(text: &str) -> Result<Machine, String> {
        serde_json::from_str(text).map_err(|e| format!("machine.json is not valid: {e}"))
    }

    /// Checks what this engine and accelerator can run; every problem, each
    /// saying what would be right.
    pub fn check(&self, engine: &QemuEngine) -> Vec<String> {
        let mut bad = Vec::new();
        if self.version != 1 {
            bad.push(format!(
                "machine.json version {} is not supported (expected 1)",
                self.version
            ));
        }
        if !matches!(self.chipset.as_str(), "pc" | "q35") {
            bad.push(format!(
                "chipset '{}' is not supported (expected 'pc' or 'q35')",
                self.chipset
            ));
        }
        let cpu_ok = !self.cpu.is_empty() && self.cpu.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !cpu_ok {
            bad.push(format!("cpu '{}' is not a qemu CPU model name", self.cpu));
        } else if engine.accel == Accel::Tcg && self.cpu == "host" {
            bad.push("cpu 'host' needs KVM, and this worker runs qemu with TCG (accel = \"tcg\"): use 'max' or a named model such as 'qemu64'".into());
        }
        let memory = self.memory();
        if memory < 16 {
            bad.push(format!("memory {memory} MiB is too small (at least 16)"));
        }
        if memory > engine.limits.max_memory {
            bad.push(format!(
                "memory {memory} MiB is more than this worker allows ({} MiB, limits.maxMemory)",
                engine.limits.max_memory
            ));
        }
        let cpus = self.threads() * self.cores() * self.sockets();
        if cpus == 0 || cpus > engine.limits.max_cpus {
            bad.push(format!(
                "threads × cores × sockets = {cpus} CPUs, this worker allows 1 to {} (limits.maxCPUs)",
                engine.limits.max_cpus
            ));
        }
        if engine.accel == Accel::Tcg && cpus > 1 && self.threads() > 1 {
            bad.push("threads > 1 gives nothing under TCG (one host thread per vCPU at best): use threads = 1".into());
        }
        if !matches!(self.network.as_str(), "virtio-net-pci" | "e1000" | "rtl8139") {
            bad.push(format!(
                "network '{}' is not supported (expected 'virtio-net-pci', 'e1000' or 'rtl8139')",
                self.network
            ));
        }
        if !matches!(self.graphics.as_str(), "VGA" | "std" | "none") {
            bad.push(format!(
                "graphics '{}' is not supported (expected 'VGA'; qxl and virtio-gpu are not offered under TCG)",
                self.graphics
            ));
        }
        if self.sound != "none" {
            bad.push(format!("sound '{}' is not supported (expected 'none')", self.sound));
        }
        if self.tablet != "none" && self.tablet != "usb-tablet" {
            bad.push(format!(
                "tablet '{}' is not supported (expected 'none' or 'usb-tablet')",
                self.tablet
            ));
        }
        match &self.boot {
            None => bad.push(
                "the image has no boot section: this engine boots images with a kernel (boot.kernel, boot.initrd, boot.append); disk images are not supported yet".into(),
            ),
            Some(boot) => {
                if let Err(e) = image_file("kernel", &boot.kernel) {
                    bad.push(e);
                }
                if let Some(initrd) = &boot.initrd
                    && let Err(e) = image_file("initrd", initrd)
                {
                    bad.push(e);
                }
                if boot.append.len() > 4096 || boot.append.contains(['\n', '\0']) {
                    bad.push("boot.append must be one line of at most 4096 bytes".into());
                }
            }
        }
        bad
    }

    fn memory(&self) -> u32 {
        self.memory.unwrap_or(256)
    }
    fn threads(&self) -> u32 {
        self.threads.unwrap_or(1)
    }
    fn cores(&self) -> u32 {
        self.cores.unwrap_or(1)
    }
    fn sockets(&self) -> u32 {
        self.sockets.unwrap_or(1)
    }

    /// The files of the image qemu opens (names in the image folder).
    pub fn files(&self) -> Vec<String> {
        let Some(boot) = &self.boot else { return Vec::new() };
        let mut out = vec![boot.kernel.clone()];
        out.extend(boot.initrd.clone());
        out
    }

    /// qemu's arguments (after the program), run with the sandbox directory as
    /// cwd; `image` is the image folder's host path.
    pub fn argv(&self, engine: &QemuEngine, image: &str) -> Vec<String> {
        let accel = match engine.accel {
            Accel::Tcg => "tcg",
            Accel::Kvm => "kvm",
        };
        let mut a: Vec<String> = [
            "-S",
            "-nodefaults",
            "-no-user-config",
            "-no-reboot",
            "-name",
            "enginehost",
            "-accel",
            accel,
            "-machine",
            &self.chipset,
            "-cpu",
            &self.cpu,
            "-m",
            &self.memory().to_string(),
            "-smp",
            &format!(
                "{},sockets={},cores={},threads={}",
                self.threads() * self.cores() * self.sockets(),
                self.sockets(),
                self.cores(),
                self.threads()
            ),
            "-display",
            "none",
            "-vnc",
            "unix:vnc.sock,share=force-shared",
            "-qmp",
            "unix:qmp.sock,server=on,wait=off",
            "-serial",
            "file:serial.log",
            "-netdev",
            GUESTFWD,
            "-device",
            &format!("{},netdev=n0", self.network),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if self.graphics != "none" {
            a.extend(["-device".into(), "VGA".into()]);
        }
        if self.tablet == "usb-tablet" {
            a.extend([
                "-device".into(),
                "qemu-xhci".into(),
                "-device".into(),
                "usb-tablet".into(),
            ]);
        }
        if let Some(boot) = &self.boot {
            a.extend(["-kernel".into(), format!("{image}/{}", boot.kernel)]);
            if let Some(initrd) = &boot.initrd {
                a.extend(["-initrd".into(), format!("{image}/{initrd}")]);
            }
            a.extend(["-append".into(), boot.append.clone()]);
        }
        a
    }
}
