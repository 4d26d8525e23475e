//! ITU-T G.107 E-model (full, default parameters) and the BESIP simplified form.

/// Which form of the E-model computes R (YANG leaf `emodel`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    ItuG107,
    BesipSimplified,
}

impl Variant {
    pub fn parse(s: &str) -> Option<Variant> {
        match s {
            "itu-g107" => Some(Variant::ItuG107),
            "besip-simplified" => Some(Variant::BesipSimplified),
            _ => None,
        }
    }
}

/// Impairments measured on a stream that feed the model.
#[derive(Debug, Clone, Copy)]
pub struct Impairments {
    /// Mean one-way delay T (= Ta) in ms; Tr is taken as 2T.
    pub one_way_delay_ms: f64,
    /// Packet-loss probability Ppl in percent.
    pub loss_percent: f64,
    /// BurstR (1 for random loss).
    pub burst_ratio: f64,
    /// Codec equipment impairment Ie.
    pub ie: f64,
    /// Codec packet-loss robustness Bpl.
    pub bpl: f64,
}

/// G.107 parameters; `Default` gives the default values of G.107 Table 3.
#[derive(Debug, Clone, Copy)]
pub struct G107 {
    pub slr: f64,
    pub rlr: f64,
    pub stmr: f64,
    pub lstr: f64,
    pub ds: f64,
    pub telr: f64,
    pub wepl: f64,
    pub nc: f64,
    pub nfor: f64,
    pub ps: f64,
    pub pr: f64,
    pub qdu: f64,
    pub a: f64,
}

impl Default for G107 {
    fn default() -> Self {
        G107 {
            slr: 8.0,
            rlr: 2.0,
            stmr: 15.0,
            lstr: 18.0,
            ds: 3.0,
            telr: 65.0,
            wepl: 110.0,
            nc: -70.0,
            nfor: -64.0,
            ps: 35.0,
            pr: 35.0,
            qdu: 1.0,
            a: 0.0,
        }
    }
}

fn db_sum(levels: &[f64]) -> f64 {
    10.0 * levels
        .iter()
        .map(|l| 10f64.powf(l / 10.0))
        .sum::<f64>()
        .log10()
}

impl G107 {
    /// Total noise No (dBm0p) and basic signal-to-noise ratio Ro.
    fn noise(&self) -> (f64, f64) {
        let olr = self.slr + self.rlr;
        let nos =
            self.ps - self.slr - self.ds - 100.0 + 0.004 * (self.ps - olr - self.ds - 14.0).powi(2);
        let pre = self.pr + 10.0 * (1.0 + 10f64.powf((10.0 - self.lstr) / 10.0)).log10();
        let nor = self.rlr - 121.0 + pre + 0.008 * (pre - 35.0).powi(2);
        let nfo = self.nfor + self.rlr;
        let no = db_sum(&[self.nc, nos, nor, nfo]);
        (no, 15.0 - 1.5 * (self.slr + no))
    }

    /// Simultaneous impairment factor Is = Iolr + Ist + Iq.
    fn is(&self, no: f64, ro: f64) -> f64 {
        let olr = self.slr + self.rlr;
        let xolr = olr + 0.2 * (64.0 + no - self.rlr);
        let iolr = 20.0 * ((1.0 + (xolr / 8.0).powi(8)).powf(1.0 / 8.0) - xolr / 8.0);
        let s = self.stmr;
        let ist = 12.0 * (1.0 + ((s - 13.0) / 6.0).powi(8)).powf(1.0 / 8.0)
            - 28.0 * (1.0 + ((s + 1.0) / 19.4).powi(35)).powf(1.0 / 35.0)
            - 13.0 * (1.0 + ((s - 3.0) / 33.0).powi(13)).powf(1.0 / 13.0)
            + 29.0;
        let q = 37.0 - 15.0 * self.qdu.log10();
        let g = 1.07 + 0.258 * q + 0.0602 * q * q;
        let y = (ro - 100.0) / 15.0 + 46.0 / 8.4 - g / 9.0;
        let z = 46.0 / 30.0 - g / 40.0;
        let iq = 15.0 * (1.0 + 10f64.powf(y) + 10f64.powf(z)).log10();
        iolr + ist + iq
    }

    /// Delay impairment Id = Idte + Idle + Idd for mean one-way delay t (T = Ta, Tr = 2T).
    fn id(&self, no: f64, ro: f64, t: f64) -> f64 {
        let roe = -1.5 * (no - self.rlr);
        let terv = self.telr - 40.0 * ((1.0 + t / 10.0) / (1.0 + t / 150.0)).log10()
            + 6.0 * (-0.3 * t * t).exp();
        let re = 80.0 + 2.5 * (terv - 14.0);
        let idte = ((roe - re) / 2.0 + ((roe - re).powi(2) / 4.0 + 100.0).sqrt() - 1.0)
            * (1.0 - (-t).exp());
        let tr = 2.0 * t;
        let rle = 10.5 * (self.wepl + 7.0) * (tr + 1.0).powf(-0.25);
        let idle = (ro - rle) / 2.0 + ((ro - rle).powi(2) / 4.0 + 169.0).sqrt();
        let idd = if t > 100.0 {
            let x = (t / 100.0).log10() / 2f64.log10();
            25.0 * ((1.0 + x.powi(6)).powf(1.0 / 6.0)
                - 3.0 * (1.0 + (x / 3.0).powi(6)).powf(1.0 / 6.0)
                + 2.0)
        } else {
            0.0
        };
        idte + idle + idd
    }

    pub fn r_factor(&self, imp: &Impairments) -> f64 {
        let (no, ro) = self.noise();
        let t = imp.one_way_delay_ms.max(0.0);
        ro - self.is(no, ro) - self.id(no, ro, t) - ie_eff(imp) + self.a
    }
}

/// Effective equipment impairment Ie-eff = Ie + (95 − Ie)·Ppl/(Ppl/BurstR + Bpl).
pub fn ie_eff(imp: &Impairments) -> f64 {
    let ppl = imp.loss_percent.clamp(0.0, 100.0);
    let burst = if imp.burst_ratio.is_finite() && imp.burst_ratio >= 1.0 {
        imp.burst_ratio
    } else {
        1.0
    };
    let bpl = if imp.bpl > 0.0 { imp.bpl } else { 1.0 };
    imp.ie + (95.0 - imp.ie) * ppl / (ppl / burst + bpl)
}

/// BESIP simplified model: R = 94.7688 − 1.4136 − Id − Ie-eff.
pub fn simplified_r(imp: &Impairments) -> f64 {
    let t = imp.one_way_delay_ms.max(0.0);
    let id = if t < 175.0 {
        0.0267 * t
    } else {
        0.1194 * t - 15.876
    };
    94.7688 - 1.4136 - id - ie_eff(imp)
}

/// R for the chosen variant.
pub fn r_factor(variant: Variant, imp: &Impairments) -> f64 {
    match variant {
        Variant::ItuG107 => G107::default().r_factor(imp),
        Variant::BesipSimplified => simplified_r(imp),
    }
}

/// R → MOS (G.107 Annex B), clamped to 1..4.5.
pub fn mos_from_r(r: f64) -> f64 {
    if !r.is_finite() || r <= 0.0 {
        1.0
    } else if r >= 100.0 {
        4.5
    } else {
        (1.0 + 0.035 * r + r * (r - 60.0) * (100.0 - r) * 7e-6).clamp(1.0, 4.5)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean(ie: f64, bpl: f64, loss: f64) -> Impairments {
        Impairments {
            one_way_delay_ms: 0.0,
            loss_percent: loss,
            burst_ratio: 1.0,
            ie,
            bpl,
        }
    }

    #[test]
    fn defaults_give_r_93_2_and_mos_4_41() {
        let r = G107::default().r_factor(&clean(0.0, 4.3, 0.0));
        assert!((r - 93.2).abs() < 0.05, "R = {r}");
        assert!(
            (mos_from_r(r) - 4.41).abs() < 0.005,
            "MOS = {}",
            mos_from_r(r)
        );
    }

    #[test]
    fn mos_at_published_r_points() {
        // The formula gives 4.024 at R = 80; published tables round it to 4.03.
        for (r, mos) in [
            (50.0, 2.58),
            (60.0, 3.10),
            (70.0, 3.60),
            (80.0, 4.03),
            (90.0, 4.34),
        ] {
            assert!(
                (mos_from_r(r) - mos).abs() < 0.0075,
                "R {r}: {}",
                mos_from_r(r)
            );
        }
        assert_eq!(mos_from_r(-5.0), 1.0);
        assert_eq!(mos_from_r(120.0), 4.5);
        assert_eq!(mos_from_r(f64::NAN), 1.0);
    }

    #[test]
    fn ie_eff_at_two_percent_random_loss() {
        assert!((ie_eff(&clean(0.0, 25.1, 2.0)) - 7.0).abs() < 0.1);
        assert!((ie_eff(&clean(11.0, 19.0, 2.0)) - 19.0).abs() < 0.1);
        assert!((ie_eff(&clean(15.0, 16.1, 2.0)) - 24.0).abs() < 0.3);
    }

    #[test]
    fn bursty_loss_hurts_more_than_random() {
        let random = ie_eff(&clean(0.0, 25.1, 5.0));
        let bursty = ie_eff(&Impairments {
            burst_ratio: 3.0,
            ..clean(0.0, 25.1, 5.0)
        });
        assert!(bursty > random);
    }

    #[test]
    fn delay_lowers_r_in_both_variants() {
        for v in [Variant::ItuG107, Variant::BesipSimplified] {
            let r0 = r_factor(v, &clean(0.0, 25.1, 0.0));
            let r150 = r_factor(
                v,
                &Impairments {
                    one_way_delay_ms: 150.0,
                    ..clean(0.0, 25.1, 0.0)
                },
            );
            let r300 = r_factor(
                v,
                &Impairments {
                    one_way_delay_ms: 300.0,
                    ..clean(0.0, 25.1, 0.0)
                },
            );
            assert!(r0 > r150 && r150 > r300, "{v:?}: {r0} {r150} {r300}");
        }
        // Simplified form: R = 93.3552 − 0.0267·T below 175 ms.
        let r = simplified_r(&Impairments {
            one_way_delay_ms: 100.0,
            ..clean(0.0, 25.1, 0.0)
        });
        assert!((r - (93.3552 - 2.67)).abs() < 1e-9);
        // G.107: 150 ms one-way gives R about 89 with default parameters.
        let r = G107::default().r_factor(&Impairments {
            one_way_delay_ms: 150.0,
            ..clean(0.0, 25.1, 0.0)
        });
        assert!(r > 85.0 && r < 92.0, "R(150 ms) = {r}");
    }
}
