//! An IP camera for the tests: GStreamer's RTSP server on a free loopback port, with a user
//! and password (basic or digest), serving a 320x240 15 fps picture and a 440 Hz tone (as
//! cheap as a camera can be, so it leaves the suite room on two cores); run on
//! a GLib main context of its own, in a thread of its own, until dropped.

use gstreamer as gst;
use gstreamer_rtsp::RTSPAuthMethod;
use gstreamer_rtsp_server::{self as rtsp, prelude::*};

pub const USER: &str = "cam";
pub const PASSWORD: &str = "s3cret-pass";

pub struct Camera {
    port: u16,
    main_loop: gst::glib::MainLoop,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Camera {
    /// A camera that asks for [`USER`] and [`PASSWORD`], by digest or basic auth.
    pub fn start(digest: bool) -> Self {
        callfeed::media::init().unwrap();
        let context = gst::glib::MainContext::new();
        let main_loop = gst::glib::MainLoop::new(Some(&context), false);
        let (port_tx, port_rx) = std::sync::mpsc::channel();
        let running = main_loop.clone();
        let thread = std::thread::spawn(move || {
            let server = serve(digest);
            let _source = context
                .with_thread_default(|| server.attach(Some(&context)))
                .unwrap()
                .unwrap();
            port_tx.send(server.bound_port() as u16).unwrap();
            context.with_thread_default(|| running.run()).unwrap();
        });
        let port = port_rx.recv().unwrap();
        Self {
            port,
            main_loop,
            thread: Some(thread),
        }
    }

    /// Its URL with `user` and `password` in it.
    pub fn url(&self, user: &str, password: &str) -> String {
        format!("rtsp://{user}:{password}@127.0.0.1:{}/cam", self.port)
    }
}

impl Drop for Camera {
    fn drop(&mut self) {
        self.main_loop.quit();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(digest: bool) -> rtsp::RTSPServer {
    let server = rtsp::RTSPServer::new();
    server.set_address("127.0.0.1");
    server.set_service("0");
    let factory = rtsp::RTSPMediaFactory::new();
    factory.set_launch(
        "( videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=15/1 \
         ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=15 bframes=0 \
         ! rtph264pay name=pay0 pt=96 config-interval=-1 \
         audiotestsrc is-live=true freq=440 ! audio/x-raw,rate=48000,channels=1 ! voaacenc \
         ! rtpmp4gpay name=pay1 pt=97 )",
    );
    factory.set_shared(true);
    factory.add_role_from_structure(
        &gst::Structure::builder("viewer")
            .field(rtsp::RTSP_PERM_MEDIA_FACTORY_ACCESS, true)
            .field(rtsp::RTSP_PERM_MEDIA_FACTORY_CONSTRUCT, true)
            .build(),
    );
    let token = rtsp::RTSPToken::builder()
        .field(rtsp::RTSP_TOKEN_MEDIA_FACTORY_ROLE, "viewer")
        .build();
    let auth = rtsp::RTSPAuth::new();
    if digest {
        auth.add_digest(USER, PASSWORD, &token);
        auth.set_supported_methods(RTSPAuthMethod::Digest);
    } else {
        auth.add_basic(rtsp::RTSPAuth::make_basic(USER, PASSWORD).as_str(), &token);
        auth.set_supported_methods(RTSPAuthMethod::Basic);
    }
    server.set_auth(Some(&auth));
    server.mount_points().unwrap().add_factory("/cam", factory);
    server
}
