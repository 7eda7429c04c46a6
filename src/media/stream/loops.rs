//! How many times a stream's input plays: the one loop-count rule, for live streams and
//! passthrough alike. A leaf.

/// How many times the input is played.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Loops {
    Times(u32),
    Forever,
}

impl Loops {
    /// Whether another play follows once `played` plays have finished: the one loop-count
    /// rule, for live streams and passthrough alike.
    pub fn plays_again_after(self, played: u32) -> bool {
        match self {
            Loops::Times(n) => played < n,
            Loops::Forever => true,
        }
    }
}

impl std::str::FromStr for Loops {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "forever" | "-1" => Ok(Loops::Forever),
            n => n
                .parse::<u32>()
                .ok()
                .filter(|n| *n >= 1)
                .map(Loops::Times)
                .ok_or_else(|| format!("`{s}`: a loop count is 1 or more, or `forever`")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loop_count_rule() {
        assert!(Loops::Times(2).plays_again_after(1));
        assert!(!Loops::Times(2).plays_again_after(2));
        assert!(Loops::Forever.plays_again_after(u32::MAX));
    }
}
